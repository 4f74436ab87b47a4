import { setTimeout as sleep } from 'node:timers/promises';
import type { GatewayClient } from '../../client/gateway-client.js';
import type { FunctionStatus } from '../../core/function-types.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { exactTopics, type TopicMatcher } from './topic-matchers.js';
import { TopicMap, type ListedFunction } from './topic-map.js';

export interface MapBuilderOptions {
  gateway: GatewayClient;
  /** How often the map is rebuilt while the gateway answers (rebuild_interval). */
  rebuildIntervalMs: number;
  matcher?: TopicMatcher;
  /** Splits a `topic` annotation into topics; default `,`. */
  delimiter?: string;
  logger?: Logger;
}

/** The first wait after a failed rebuild; it doubles up to the rebuild interval. */
const firstRetryWaitMs = 250;

/** Lists every function of every namespace, as OpenFaaS's connector-sdk does. */
export async function listFunctions(gateway: GatewayClient): Promise<ListedFunction[]> {
  const namespaces = await gateway.json<string[] | null>('/system/namespaces');
  const listed: ListedFunction[] = [];
  for (const namespace of namespaces?.length ? namespaces : ['']) {
    const functions = await gateway.json<FunctionStatus[] | null>(
      '/system/functions',
      namespace ? { namespace } : undefined,
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
 * crash.
 */
export class TopicMapBuilder {
  readonly #options: Required<Omit<MapBuilderOptions, 'logger'>> & { logger: Logger };
  #map: TopicMap;
  #built = false;

  constructor(options: MapBuilderOptions) {
    this.#options = { matcher: exactTopics, delimiter: ',', logger: silentLogger, ...options };
    this.#map = new TopicMap(new Map(), this.#options.matcher);
  }

  /** The map now in use (empty until the first build succeeds). */
  get map(): TopicMap {
    return this.#map;
  }

  /**
   * The map, once one was built from the gateway; undefined before: an empty map then means "not
   * known yet", not "no function takes it", and an event must not be answered as if it were.
   */
  get builtMap(): TopicMap | undefined {
    return this.#built ? this.#map : undefined;
  }

  /** Builds once now; the map, or the failure (the last map stays in use). */
  async rebuild(): Promise<TopicMap> {
    const { gateway, matcher, delimiter } = this.#options;
    const functions = await listFunctions(gateway);
    this.#map = TopicMap.fromFunctions(functions, { matcher, delimiter });
    this.#built = true;
    return this.#map;
  }

  /** Rebuilds until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { rebuildIntervalMs, logger } = this.#options;
    let retryWaitMs = firstRetryWaitMs;
    let failing = false;
    while (!signal.aborted) {
      let waitMs = rebuildIntervalMs;
      try {
        await this.rebuild();
        if (failing) logger.info('the gateway answers again: topic map rebuilt');
        failing = false;
        retryWaitMs = firstRetryWaitMs;
      } catch (error) {
        if (!failing) {
          logger.warn({ err: error }, 'cannot list functions: keeping the last topic map');
        }
        failing = true;
        waitMs = Math.min(retryWaitMs, rebuildIntervalMs);
        retryWaitMs *= 2;
      }
      await sleep(waitMs, undefined, { signal }).catch(() => {});
    }
  }
}
