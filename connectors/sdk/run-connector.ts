import type { Registry } from 'prom-client';
import type { GatewayClient } from '../../client/gateway-client.js';
import type { Env } from '../../core/config.js';
import type { Logger } from '../../core/logger.js';
import type { Source } from '../../core/source.js';
import type { ConnectorConfig } from './config.js';
import { connectorParts, type SyncInvokerFactory } from './connector-parts.js';
import type { InvokerResponse } from './controller.js';
import type { TopicMap } from './topic-map.js';
import type { TopicMatcher } from './topic-matchers.js';

/** A kind's settings: the SDK's (gateway, retries, ...) and whatever its source reads besides. */
export interface KindConfig {
  connector: ConnectorConfig;
}

/** What runs a connector besides its own settings: the process it runs in. */
export interface ConnectorHost {
  /**
   * Inside `fnbus up`: a source that takes HTTP (webhooks) is served on the hub's port, not on a
   * port of its own; a cron ledger keeps its last firings in `stateDir`.
   */
  embedded?: boolean;
  stateDir?: string;
  /** Where secrets are, one file each (webhook signing keys); default secret_mount_path. */
  secretsDir?: string;
}

/** What a kind's source is made from. */
export interface SourceParts<C extends KindConfig = KindConfig> {
  config: C;
  /** The map in use; undefined until the first is built (a source is started after it is). */
  topicMap: () => TopicMap | undefined;
  /** The gateway's system API, for what a source asks besides deliveries (a call's state). */
  gateway: GatewayClient;
  /** The signal for one such call: its deadline, and the connector's close. */
  callSignal: () => AbortSignal;
  logger: Logger;
  registry?: Registry;
  host: ConnectorHost;
}

/** A connector's source as the runtime runs it: `emit` resolves with the functions' answers. */
export type ConnectorSource = Source<InvokerResponse[]>;

/**
 * One kind of connector: all that `fnbus up --connectors <name>` and `fnbus connector <name>`
 * need of it (connectors/kinds.ts lists them). `createSource` may open what the source holds (a
 * listener, a ledger's connection); the source's `start` releases it when its signal aborts.
 */
export interface ConnectorKind<
  C extends KindConfig = KindConfig,
  S extends ConnectorSource = ConnectorSource,
> {
  /** As named on the command line: `cron`, `webhook`. */
  name: string;
  /** Sent as `X-Connector`, e.g. `cron-connector` (OpenFaaS's name where it has one). */
  connector: string;
  /**
   * Runs in `fnbus up` when no `--connectors` are named (cron, webhook: they need nothing else);
   * a connector to a broker runs when named.
   */
  runsByDefault?: boolean;
  /**
   * In `fnbus up`, runs on a thread of its own, not the gateway's: a broker's events come by the
   * thousand a second (Kafka, MQTT, NATS). Not for a kind that serves the gateway's requests.
   */
  ownThread?: boolean;
  /**
   * How its events' topics meet the functions' `topic` annotations: exact (the default), or the
   * kind's wildcards (MQTT's `+`/`#`: topic-matchers.ts).
   */
  matcher?: TopicMatcher;
  /** Its settings from env, the SDK's with them; every problem at once (a ConfigError). */
  readConfig(env: Env): C;
  createSource(parts: SourceParts<C>): Promise<S>;
}

export interface RunConnectorOptions {
  /** The kind's settings (OpenFaaS's connector env names; connectors/README.md). */
  env: Env;
  logger: Logger;
  registry?: Registry;
  /** `Authorization` for the gateway's system API (else basic_auth's files, when on). */
  authorization?: string;
  host?: ConnectorHost;
  /** How long stop() lets deliveries in flight finish before they are cut; default 10 s. */
  stopTimeoutMs?: number;
  /** The deadline of each system call to the gateway; default connector-parts' own. */
  systemCallTimeoutMs?: number;
  /** How synchronous calls reach functions; default the gateway's route over HTTP. */
  syncInvoker?: SyncInvokerFactory;
}

export interface RunningConnector<S extends ConnectorSource = ConnectorSource> {
  kind: string;
  source: S;
  /** Settles when the connector has stopped: rejects on a failure its source cannot recover from. */
  done: Promise<void>;
  /** Stops taking events, lets deliveries in flight finish (within stopTimeoutMs), cuts the rest. */
  stop(): Promise<void>;
}

/** Once deliveries are cut, how long their ends (a dead letter each) may take. */
const cutGraceMs = 1000;

/**
 * Runs one connector: reads its kind's settings, makes its parts (gateway client, topic map
 * builder, controller), makes its source, waits for the first topic map, then starts the source
 * with the controller's `emit`, and keeps the map rebuilt until stop(). Resolves once it runs
 * (the first map is waited for in the background: a gateway that is not up yet is not an error).
 *
 * Every call to the gateway has a deadline and a signal, and stop() is bounded: by stopTimeoutMs
 * for deliveries in flight, then a second for what cutting them leaves (dead letters), even when
 * the gateway takes connections and never answers.
 */
export async function runConnector<C extends KindConfig, S extends ConnectorSource>(
  kind: ConnectorKind<C, S>,
  options: RunConnectorOptions,
): Promise<RunningConnector<S>> {
  const config = kind.readConfig(options.env);
  const logger = options.logger.child({ connector: kind.connector });
  const parts = await connectorParts(config.connector, {
    connector: kind.connector,
    matcher: kind.matcher,
    logger,
    registry: options.registry,
    authorization: options.authorization,
    systemCallTimeoutMs: options.systemCallTimeoutMs,
    ...(options.syncInvoker ? { syncInvoker: options.syncInvoker } : {}),
  });
  let source: S;
  try {
    source = await kind.createSource({
      config,
      topicMap: () => parts.builder.builtMap,
      gateway: parts.gateway,
      callSignal: parts.callSignal,
      logger,
      registry: options.registry,
      host: options.host ?? {},
    });
  } catch (error) {
    await parts.close();
    throw error;
  }
  /** Aborts when stop() is asked: the source takes no more events, the map is no more rebuilt. */
  const stopping = new AbortController();
  /** Aborts once the deliveries in flight have had their time. */
  const cutting = new AbortController();
  const building = parts.builder.run(stopping.signal);
  const done = (async () => {
    try {
      const map = await parts.builder.firstMap(stopping.signal);
      if (map)
        logger.info({ gateway: config.connector.gatewayUrl }, `${kind.name} connector running`);
      // Started even when stopped before the first map, with its signal aborted: it releases
      // what it holds.
      await source.start((event) => parts.controller.emit(event, cutting.signal), stopping.signal);
    } finally {
      stopping.abort();
    }
  })();
  // A failure is the caller's to handle through `done`; not an unhandled rejection meanwhile.
  done.catch(() => {});
  logger.info(
    { gateway: config.connector.gatewayUrl },
    `${kind.name} connector waiting for its first topic map`,
  );
  let stopped: Promise<void> | undefined;
  const stop = async () => {
    stopping.abort();
    const finished = Promise.allSettled([done, building]);
    await within(finished, options.stopTimeoutMs ?? 10_000);
    cutting.abort();
    await within(finished, cutGraceMs);
    // Ends whatever system call still waits (a dead letter to a gateway that never answers).
    await parts.close();
  };
  return {
    kind: kind.name,
    source,
    done,
    stop: () => (stopped ??= stop()),
  };
}

/** Waits for `work`, `ms` at most. */
async function within(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    work,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
