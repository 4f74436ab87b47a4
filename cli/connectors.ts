import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { ValidationError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { CronConnectorName } from '../core/openfaas-names.js';
import { CronConnector } from '../connectors/cron/cron-connector.js';
import { openLedger } from '../connectors/cron/open-ledger.js';
import type { ConnectorConfig } from '../connectors/sdk/config.js';
import { connectorParts } from '../connectors/sdk/connector-parts.js';

/** The connectors `fnbus up --connectors` and `fnbus connector <kind>` know. */
export const connectorKinds = ['cron'] as const;
export type ConnectorKind = (typeof connectorKinds)[number];

export interface ConnectorRun {
  config: ConnectorConfig;
  logger: Logger;
  registry: Registry;
  /** Where the cron connector's replicas share slots: redis://, nats://, or local. */
  leaseUrl?: string;
  /** Where a local ledger keeps the last firings (for catch-up across restarts). */
  stateDir?: string;
  /** `Authorization` for the gateway's system API (`fnbus up`'s own credentials). */
  authorization?: string;
}

export interface RunningConnectors {
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
  try {
    for (const kind of kinds) {
      if (kind === 'cron') stops.push(await startCron(run));
    }
  } catch (error) {
    for (const stop of stops) await stop();
    throw error;
  }
  return {
    async stop() {
      for (const stop of stops) await stop();
    },
  };
}

async function startCron({
  config,
  logger,
  registry,
  leaseUrl,
  stateDir,
  authorization,
}: ConnectorRun) {
  const log = logger.child({ connector: CronConnectorName });
  const parts = await connectorParts(config, {
    connector: CronConnectorName,
    logger: log,
    registry,
    authorization,
  });
  const ledger = await openLedger(leaseUrl, stateDir && join(stateDir, 'cron-last-fired.json'));
  const cron = new CronConnector({
    topicMap: () => parts.builder.map,
    controller: parts.controller,
    ledger,
    callState: async (callId) =>
      (await parts.gateway.json<{ state?: string }>(`/system/calls/${encodeURIComponent(callId)}`))
        .state,
    logger: log,
  });
  const stop = new AbortController();
  const running = Promise.all([parts.builder.run(stop.signal), cron.run(stop.signal)]);
  log.info({ gateway: config.gatewayUrl, lease: leaseUrl ?? 'local' }, 'cron connector running');
  return async () => {
    stop.abort();
    await running;
    await parts.close();
    await ledger.close();
  };
}
