import { setTimeout as sleep } from 'node:timers/promises';
import type { GatewayClient } from '../../client/gateway-client.js';
import type { FunctionStatus } from '../../core/function-types.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { Backoff } from '../../core/retry-policy.js';
import { exactTopics, type TopicMatcher } from './topic-matchers.js';
import { TopicMap, type ListedFunction } from './topic-map.js';

export interface MapBuilderOptions {
  gateway: GatewayClient;
  /** How often the map is rebuilt while the gateway answers (rebuild_interval). */
  rebuildIntervalMs: number;
  matcher?: TopicMatcher;
  /** Splits a `topic` annotation into topics; default `,`. */
  delimiter?: string;
  /** The signal of one call to the gateway (its deadline, and the connector's close). */
  callSignal?: () => AbortSignal | undefined;
  logger?: Logger;
}

/** The first wait after a failed rebuild; it doubles (jittered) up to the rebuild interval. */
const firstRetryWaitMs = 250;

/**
 * Lists every function of every namespace, as OpenFaaS's connector-sdk does. `signal` ends each
 * call to the gateway (a call's deadline).
 */
export async function listFunctions(
  gateway: GatewayClient,
  signal: () => AbortSignal | undefined = () => undefined,
): Promise<ListedFunction[]> {
  const namespaces = await gateway.json<string[] | null>('/system/namespaces', undefined, signal());
  const listed: ListedFunction[] = [];
  for (const namespace of namespaces?.length ? namespaces : ['']) {
    const functions = await gateway.json<FunctionStatus[] | null>(
      '/system/functions',
      namespace ? { namespace } : undefined,
      signal(),
    );
    for (const fn of functions ?? []) {
      listed.push({ name: fn.name, annotations: fn.annotations, namespace });
    }
  }
  return listed;
}

/**
 * Keeps a TopicMap current: built at start, then again every `rebuildIntervalMs`, so a function
 * deployed later is reached within one interval. A gateway that does not answer keeps the last
 * map in use and is tried again with backoff, from 250 ms doubling up to the interval: never a
 * crash. Each call to the gateway has a deadline, so a gateway that takes connections and never
 * answers holds neither a rebuild nor a stop.
 */
export class TopicMapBuilder {
  readonly #options: Required<Omit<MapBuilderOptions, 'logger'>> & { logger: Logger };
  #map: TopicMap | undefined;
  readonly #firstBuilt: Promise<void>;
  #onFirstBuilt!: () => void;

  constructor(options: MapBuilderOptions) {
    this.#options = {
      matcher: exactTopics,
      delimiter: ',',
      logger: silentLogger,
      callSignal: () => undefined,
      ...options,
    };
    this.#firstBuilt = new Promise<void>((resolve) => (this.#onFirstBuilt = resolve));
  }

  /**
   * The map, once one was built from the gateway; undefined before: an empty map then would mean
   * "no function takes it", and an event must not be answered (or acknowledged) as if it were.
   */
  get builtMap(): TopicMap | undefined {
    return this.#map;
  }

  /** Resolves with the first map built, or undefined if `signal` aborts before. */
  async firstMap(signal: AbortSignal): Promise<TopicMap | undefined> {
    if (this.#map || signal.aborted) return this.#map;
    const aborted = new Promise<void>((resolve) =>
      signal.addEventListener('abort', () => resolve(), { once: true }),
    );
    await Promise.race([this.#firstBuilt, aborted]);
    return this.#map;
  }

  /** Builds once now; the map, or the failure (the last map stays in use). */
  async rebuild(signal?: AbortSignal): Promise<TopicMap> {
    const { gateway, matcher, delimiter, callSignal } = this.#options;
    const functions = await listFunctions(gateway, () => {
      const call = callSignal();
      return call && signal ? AbortSignal.any([call, signal]) : (call ?? signal);
    });
    const map = TopicMap.fromFunctions(functions, { matcher, delimiter });
    this.#map = map;
    this.#onFirstBuilt();
    return map;
  }

  /** Rebuilds until `signal` aborts (which also ends a call to the gateway in flight). */
  async run(signal: AbortSignal): Promise<void> {
    const { rebuildIntervalMs, logger } = this.#options;
    const retries = new Backoff({
      minWaitMs: Math.min(firstRetryWaitMs, rebuildIntervalMs),
      maxWaitMs: rebuildIntervalMs,
    });
    while (!signal.aborted) {
      let waitMs = rebuildIntervalMs;
      try {
        await this.rebuild(signal);
        if (retries.failures > 0) logger.info('the gateway answers again: topic map rebuilt');
        retries.reset();
      } catch (error) {
        if (signal.aborted) break;
        if (retries.failures === 0) {
          logger.warn({ err: error }, 'cannot list functions: keeping the last topic map');
        }
        waitMs = retries.next();
      }
      await sleep(waitMs, undefined, { signal }).catch(() => {});
    }
  }
}
