import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Env } from '../core/config.js';
import { ValidationError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { connectorKind, connectorKinds as kinds } from '../connectors/kinds.js';
import type { SyncInvokerFactory } from '../connectors/sdk/connector-parts.js';
import {
  runConnector,
  type ConnectorHost,
  type RunningConnector,
} from '../connectors/sdk/run-connector.js';
import { WebhookSource } from '../connectors/webhook/webhook-source.js';

/** The names of the connectors `fnbus up --connectors` and `fnbus connector <kind>` know. */
export const connectorKinds = kinds.map((kind) => kind.name);
/** Those `fnbus up` runs when none are named: the ones that need no broker. */
export const defaultConnectorKinds = kinds
  .filter((kind) => kind.runsByDefault)
  .map((kind) => kind.name);
/** A connector kind's name (`cron`, `webhook`). */
export type ConnectorKind = string;

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface ConnectorRun {
  /** Their configuration (OpenFaaS's connector env names; connectors/README.md). */
  env: Env;
  logger: Logger;
  registry: Registry;
  host: ConnectorHost;
  /** `Authorization` for the gateway's system API (`fnbus up`'s own credentials). */
  authorization?: string;
  /** How long stopping lets deliveries in flight finish; default runConnector's. */
  stopTimeoutMs?: number;
  /** How synchronous calls reach functions; default the gateway's route over HTTP. */
  syncInvoker?: SyncInvokerFactory;
}

export interface RunningConnectors {
  /** The webhook connector's `POST /webhook/<topic>` handler, when it runs (mounted by the hub). */
  webhook?: RequestHandler;
  /** Each connector, running until stop(). */
  running: RunningConnector[];
  stop(): Promise<void>;
}

/** `cron,webhook` → the names; `none` or empty → none. A name not known is a ValidationError. */
export function parseConnectorKinds(text: string): string[] {
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name && name !== 'none');
  for (const name of names) {
    if (!connectorKind(name)) {
      throw new ValidationError(
        `unknown connector "${name}": choose from ${connectorKinds.join(', ')} (or none)`,
      );
    }
  }
  return [...new Set(names)];
}

/** Runs the connectors named (runConnector each); each runs until stop(). */
export async function startConnectors(
  names: readonly string[],
  run: ConnectorRun,
): Promise<RunningConnectors> {
  const running: RunningConnector[] = [];
  const all: RunningConnectors = {
    running,
    async stop() {
      await Promise.all(running.map((connector) => connector.stop()));
    },
  };
  try {
    for (const name of names) {
      const kind = connectorKind(name);
      if (!kind) throw new ValidationError(`unknown connector "${name}"`);
      const connector = await runConnector(kind, run);
      running.push(connector);
      if (connector.source instanceof WebhookSource) all.webhook = connector.source.handle;
      // A source that fails for good is said once; the others go on.
      connector.done.catch((error: unknown) => {
        run.logger.error({ err: error, connector: name }, 'connector stopped');
      });
    }
  } catch (error) {
    await all.stop();
    throw error;
  }
  return all;
}
