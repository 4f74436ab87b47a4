import { setTimeout as sleep } from 'node:timers/promises';
import type { HeaderMap, InvokeRequest, InvokeResult, Invoker } from '../../core/invoker.js';
import type { AttemptRecord } from '../../core/queue.js';
import { BadGatewayError, UnavailableError, ValidationError } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { OpenFaasHeader } from '../../core/openfaas-names.js';
import {
  backoffMs,
  isRetryable,
  policyFor,
  retryAfterMs,
  type RetryPolicy,
} from '../../core/retry-policy.js';
import type { SourceEvent } from '../../core/source.js';
import type { TopicMap, TopicTarget } from './topic-map.js';
import { headerValue, utf8HeaderValue } from '../../core/http-headers.js';

/** A function's own choice of `sync` or `async` invocation, over the connector's. */
export const InvocationAnnotation = 'fnbus.connector.invocation';

/** One delivery of an event to one function, as the response subscribers see it. */
export interface InvokerResponse {
  connector: string;
  topic: string;
  function: string;
  async: boolean;
  /** The last answer's status; undefined when no answer came at all (`error` says why). */
  status?: number;
  headers: HeaderMap;
  body: Uint8Array;
  durationMs: number;
  /** Calls made, retries included. */
  attempts: number;
  /** Why the delivery failed: retries exhausted on a retried status, or no answer. */
  error?: string;
  /** A failed delivery is kept in the dead-letter store: its source may move past the event. */
  deadLettered?: boolean;
  event: SourceEvent;
  /** The call as made (each attempt the same). */
  request: InvokeRequest;
  /** Each attempt: when, how long, the status or why none. */
  tries: AttemptRecord[];
}

/** Told of every delivery's outcome (print, metrics, a reply topic); must not block. */
export interface ResponseSubscriber {
  response(response: InvokerResponse): void;
}

/** Where a delivery that failed for good is kept (the async path's dead-letter store). */
export interface DeadLetterSink {
  record(response: InvokerResponse): Promise<void>;
}

export interface ControllerOptions {
  /** Sent as `X-Connector`, e.g. `cron-connector`. */
  connector: string;
  /** The map in use now (a TopicMapBuilder's); undefined until one was built. */
  topicMap: () => TopicMap | undefined;
  sync: Invoker;
  async: Invoker;
  /** Invoke through `/async-function` unless a function's annotation says otherwise. */
  asyncInvocation: boolean;
  /** `Content-Type` when the event has none. */
  contentType: string;
  /** Calls in flight at once, over all functions. */
  maxInflight: number;
  /** Retried statuses, attempts and backoff; functions' `com.openfaas.retry.*` override it. */
  retry: RetryPolicy;
  subscribers?: ResponseSubscriber[];
  deadLetters?: DeadLetterSink;
  logger?: Logger;
}

/**
 * No topic map was built yet (the gateway is not up, or has not answered): nobody knows which
 * functions an event is for, so it is not taken, and its source does not acknowledge it.
 */
export class TopicMapNotBuiltError extends UnavailableError {
  constructor() {
    super('the topic map is not built yet (the gateway has not answered): not delivered');
  }
}

/**
 * Some functions did not take an event, after every retry: a 502, as a webhook answers it (the
 * functions behind the connector failed, not its caller).
 */
export class DeliveryError extends BadGatewayError {
  readonly failed: InvokerResponse[];

  constructor(failed: InvokerResponse[]) {
    const names = failed.map((r) => `${r.function} (${r.error ?? r.status})`).join(', ');
    super(`not delivered to ${names}`);
    this.failed = failed;
  }

  /** Every failed delivery is in the dead-letter store: the event is not lost if passed over. */
  get deadLettered(): boolean {
    return this.failed.every((response) => response.deadLettered === true);
  }
}

/**
 * Turns a source's events into function calls through the gateway: every function the topic map
 * gives for the event's topic is called at once (at most `maxInflight` calls in flight over all
 * events), with `X-Topic`, `X-Connector`, the event's headers and a `Content-Type`. A retried
 * status (429, 5xx by default) or no answer is tried again with backoff, honouring Retry-After;
 * a 429 also holds back that function's next calls for as long. `emit` resolves once every
 * function has answered, so a source acknowledges after, never before; a delivery that fails for
 * good goes to the dead-letter store (when there is one) and makes `emit` reject.
 */
export class Controller {
  readonly #options: ControllerOptions & { logger: Logger };
  #inFlight = 0;
  readonly #waiting: (() => void)[] = [];
  /** Function → until when its calls wait, after a 429. */
  readonly #pausedUntil = new Map<string, number>();

  constructor(options: ControllerOptions) {
    this.#options = { logger: silentLogger, ...options };
  }

  /**
   * Delivers `event` to every function its topic reaches (those of `event.functions` only, when
   * it names some): their answers. Rejects with a TopicMapNotBuiltError while no map was built,
   * never resolving as if the event had been delivered (at least once holds from the start).
   */
  readonly emit = async (event: SourceEvent, signal?: AbortSignal): Promise<InvokerResponse[]> => {
    const map = this.#options.topicMap();
    if (!map) throw new TopicMapNotBuiltError();
    let targets = map.match(event.topic);
    const only = event.functions;
    if (only) targets = targets.filter((target) => only.includes(target.function));
    return this.deliver(event, targets, signal);
  };

  /** Delivers `event` to `targets` (a cron firing names its one function): their answers. */
  async deliver(
    event: SourceEvent,
    targets: TopicTarget[],
    signal?: AbortSignal,
  ): Promise<InvokerResponse[]> {
    if (targets.length === 0) {
      this.#options.logger.debug({ topic: event.topic }, 'no function takes this topic');
      return [];
    }
    const request = this.#requestFor(event);
    const responses = await Promise.all(
      targets.map((target) => this.#deliverOne(event, request, target, signal)),
    );
    const failed = responses.filter((response) => response.error !== undefined);
    if (failed.length > 0) throw new DeliveryError(failed);
    return responses;
  }

  /** Whether `target` is invoked through `/async-function`: its annotation, else the default. */
  isAsync(target: TopicTarget): boolean {
    const mode = target.annotations[InvocationAnnotation]?.trim();
    return mode === 'async' || (mode !== 'sync' && this.#options.asyncInvocation);
  }

  /** The call every function of an event gets: its body and headers, and the connector's. */
  #requestFor(event: SourceEvent): InvokeRequest {
    // Copied key by key: a spread copy that then takes new keys costs ~25× as much in V8.
    const headers: HeaderMap = {};
    let typed = false;
    for (const name in event.headers) {
      headers[name] = event.headers[name] as string | string[];
      if (!typed && name.length === 12 && name.toLowerCase() === 'content-type') typed = true;
    }
    if (!typed) headers['Content-Type'] = this.#options.contentType;
    // A topic past ASCII goes as its UTF-8 bytes, as OpenFaaS's connectors send it; one with a
    // control character cannot be sent at all, and is said so (unsendable) by the invoker.
    headers[OpenFaasHeader.Topic] = utf8HeaderValue(event.topic) ?? event.topic;
    headers[OpenFaasHeader.Connector] = this.#options.connector;
    return { method: 'POST', path: '/', query: '', headers, body: event.body };
  }

  async #deliverOne(
    event: SourceEvent,
    request: InvokeRequest,
    target: TopicTarget,
    signal: AbortSignal | undefined,
  ): Promise<InvokerResponse> {
    const { connector, logger } = this.#options;
    const async = this.isAsync(target);
    const invoker = async ? this.#options.async : this.#options.sync;
    const { policy, problems } = policyFor(target.annotations, this.#options.retry);
    if (problems.length > 0) logger.warn({ function: target.function, problems }, 'ignored');
    const tries: AttemptRecord[] = [];
    const startedAt = performance.now();
    for (let attempt = 1; ; attempt++) {
      let result: InvokeResult | undefined;
      let failure: string | undefined;
      let unsendable = false;
      await this.#acquire(target.function, signal);
      const tryStartedAt = new Date();
      try {
        result = await invoker.invoke(target.function, request, { signal });
      } catch (error) {
        // A call no request can carry (an event header with a CR, say) fails alike every time.
        unsendable = error instanceof ValidationError;
        failure = unsendable ? (error as Error).message : `no answer: ${(error as Error).message}`;
      } finally {
        this.#release();
      }
      const status = result?.status;
      const tried: AttemptRecord = {
        attempt,
        startedAt: tryStartedAt.toISOString(),
        durationMs: Date.now() - tryStartedAt.getTime(),
      };
      if (status === undefined) tried.error = failure;
      else tried.status = status;
      tries.push(tried);
      const retried = isRetryable(result, policy);
      const last = unsendable || attempt >= policy.maxAttempts || signal?.aborted === true;
      if (!retried || last) {
        const response: InvokerResponse = {
          connector,
          topic: event.topic,
          function: target.function,
          async,
          status,
          headers: result?.headers ?? {},
          body: result?.body ?? new Uint8Array(),
          durationMs: performance.now() - startedAt,
          attempts: attempt,
          error: retried ? (failure ?? `answered ${status} after ${attempt} attempts`) : undefined,
          event,
          request,
          tries,
        };
        if (response.error !== undefined && event.deadLetterOnFailure !== false) {
          response.deadLettered = await this.#bury(response);
        }
        this.#publish(response);
        return response;
      }
      const after = retryAfterMs(headerValue(result?.headers, 'retry-after'));
      const waitMs = Math.max(backoffMs(policy, attempt), after ?? 0);
      if (status === 429) {
        const until = Date.now() + waitMs;
        const paused = this.#pausedUntil.get(target.function) ?? 0;
        if (until > paused) this.#pausedUntil.set(target.function, until);
      }
      logger.debug(
        { function: target.function, topic: event.topic, status, failure, attempt, waitMs },
        'delivery retried',
      );
      await sleep(waitMs, undefined, { signal }).catch(() => {});
    }
  }

  /** A slot among maxInflight, once the function is not held back. */
  async #acquire(fn: string, signal: AbortSignal | undefined): Promise<void> {
    for (;;) {
      const pausedMs = (this.#pausedUntil.get(fn) ?? 0) - Date.now();
      if (pausedMs > 0 && !signal?.aborted) {
        await sleep(pausedMs, undefined, { signal }).catch(() => {});
        continue;
      }
      if (this.#inFlight < this.#options.maxInflight) {
        this.#inFlight += 1;
        return;
      }
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  #release(): void {
    this.#inFlight -= 1;
    this.#waiting.shift()?.();
  }

  #publish(response: InvokerResponse): void {
    for (const subscriber of this.#options.subscribers ?? []) {
      try {
        subscriber.response(response);
      } catch (error) {
        this.#options.logger.warn({ err: error }, 'a response subscriber failed');
      }
    }
  }

  /** Whether the failed delivery is now in the dead-letter store. */
  async #bury(response: InvokerResponse): Promise<boolean> {
    const { deadLetters, logger } = this.#options;
    const where = { function: response.function, topic: response.topic, error: response.error };
    if (!deadLetters) {
      logger.error(where, 'delivery failed for good');
      return false;
    }
    try {
      await deadLetters.record(response);
      logger.warn(where, 'delivery failed for good: dead-lettered');
      return true;
    } catch (error) {
      logger.error({ ...where, err: error }, 'delivery failed and could not be dead-lettered');
      return false;
    }
  }
}
