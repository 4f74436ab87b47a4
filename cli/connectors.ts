import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { Env } from '../core/config.js';
import { ValidationError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { CronConnectorName } from '../core/openfaas-names.js';
import { CronConnector } from '../connectors/cron/cron-connector.js';
import { openLedger } from '../connectors/cron/open-ledger.js';
import { readConnectorConfig } from '../connectors/sdk/config.js';
import { connectorParts } from '../connectors/sdk/connector-parts.js';
import { readWebhookConfig } from '../connectors/webhook/config.js';
import {
  createWebhookHandler,
  WebhookConnectorName,
} from '../connectors/webhook/webhook-handler.js';

/** The connectors `fnbus up --connectors` and `fnbus connector <kind>` know. */
export const connectorKinds = ['cron', 'webhook'] as const;
export type ConnectorKind = (typeof connectorKinds)[number];

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface ConnectorRun {
  /** Their configuration (OpenFaaS's connector env names; connectors/README.md). */
  env: Env;
  /** The gateway, over `gateway_url` (`fnbus up`: its own). */
  gatewayUrl?: string;
  logger: Logger;
  registry: Registry;
  /** Where the cron connector's replicas share slots: redis://, nats://, or local. */
  leaseUrl?: string;
  /** Where a local ledger keeps the last firings (for catch-up across restarts). */
  stateDir?: string;
  /** Where secrets are, one file each (webhook signing keys); default secret_mount_path. */
  secretsDir?: string;
  /** `Authorization` for the gateway's system API (`fnbus up`'s own credentials). */
  authorization?: string;
}

export interface RunningConnectors {
  /** The webhook connector, when it runs: its `POST /webhook/<topic>` handler, and its port alone. */
  webhook?: { handle: RequestHandler; port: number };
  stop(): Promise<void>;
}

/** `cron,webhook` → the kinds; `none` or empty → none. A name not known is a ValidationError. */
export function parseConnectorKinds(text: string): ConnectorKind[] {
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name && name !== 'none');
  for (const name of names) {
    if (!(connectorKinds as readonly string[]).includes(name)) {
      throw new ValidationError(
        `unknown connector "${name}": choose from ${connectorKinds.join(', ')} (or none)`,
      );
    }
  }
  return [...new Set(names)] as ConnectorKind[];
}

/** Starts the connectors named; each runs until stop(). */
export async function startConnectors(
  kinds: readonly ConnectorKind[],
  run: ConnectorRun,
): Promise<RunningConnectors> {
  const stops: (() => Promise<void>)[] = [];
  const running: RunningConnectors = {
    async stop() {
      for (const stop of stops) await stop();
    },
  };
  try {
    for (const kind of kinds) {
      if (kind === 'cron') stops.push(await startCron(run));
      if (kind === 'webhook') {
        const webhook = await startWebhook(run);
        running.webhook = { handle: webhook.handler, port: webhook.port };
        stops.push(() => webhook.stop());
      }
    }
  } catch (error) {
    await running.stop();
    throw error;
  }
  return running;
}

/** A connector's config from the run's env, with its own defaults and the run's gateway. */
function configOf(run: ConnectorRun, defaults: Parameters<typeof readConnectorConfig>[1]) {
  return readConnectorConfig(
    { ...run.env, ...(run.gatewayUrl ? { gateway_url: run.gatewayUrl } : {}) },
    defaults,
  );
}

/** A connector's config, logger and parts (gateway client, map builder, controller). */
async function partsFor(
  run: ConnectorRun,
  connector: string,
  defaults: Parameters<typeof readConnectorConfig>[1],
) {
  const config = configOf(run, defaults);
  const logger = run.logger.child({ connector });
  const parts = await connectorParts(config, {
    connector,
    logger,
    registry: run.registry,
    authorization: run.authorization,
  });
  return { config, logger, parts };
}

async function startCron(run: ConnectorRun) {
  const { config, logger, parts } = await partsFor(run, CronConnectorName, {});
  const file = run.stateDir && join(run.stateDir, 'cron-last-fired.json');
  const ledger = await openLedger(run.leaseUrl, file);
  const cron = new CronConnector({
    topicMap: () => parts.builder.map,
    controller: parts.controller,
    ledger,
    registry: run.registry,
    callState: async (callId) =>
      (await parts.gateway.json<{ state?: string }>(`/system/calls/${encodeURIComponent(callId)}`))
        .state,
    logger,
  });
  const stop = new AbortController();
  const running = Promise.all([parts.builder.run(stop.signal), cron.run(stop.signal)]);
  logger.info(
    { gateway: config.gatewayUrl, lease: run.leaseUrl ?? 'local' },
    'cron connector running',
  );
  return async () => {
    stop.abort();
    await running;
    await parts.close();
    await ledger.close();
  };
}

/** Webhooks are queued (202) unless asked otherwise: the sender seldom waits for the work. */
async function startWebhook(run: ConnectorRun) {
  const { config, logger, parts } = await partsFor(run, WebhookConnectorName, {
    asyncInvocation: true,
    contentType: 'application/json',
  });
  const webhookConfig = readWebhookConfig(run.env);
  const handler = createWebhookHandler({
    topicMap: () => parts.builder.builtMap,
    controller: parts.controller,
    config: webhookConfig,
    secret: fileSecret(run.secretsDir ?? config.secretMountPath),
    logger,
  });
  const stop = new AbortController();
  const building = parts.builder.run(stop.signal);
  logger.info({ gateway: config.gatewayUrl }, 'webhook connector running');
  return {
    handler,
    port: webhookConfig.port,
    async stop() {
      stop.abort();
      await building;
      await parts.close();
    },
  };
}

/** A secret's value from its file in `dir` (trimmed); undefined when there is none. */
function fileSecret(dir: string) {
  return (name: string): Promise<string | undefined> =>
    /^[-._a-zA-Z0-9]+$/.test(name)
      ? readFile(join(dir, name), 'utf8').then(
          (value) => value.trim(),
          () => undefined,
        )
      : Promise.resolve(undefined);
}
