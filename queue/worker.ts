import { OpenFaasHeader } from '../core/openfaas-names.js';
import type { HeaderMap, InvokeResult, Invoker } from '../core/invoker.js';
import { silentLogger, type Logger } from '../core/logger.js';
import {
  bodyExcerpt,
  type AttemptOutcome,
  type Delivery,
  type Queue,
  type Settlement,
} from '../core/queue.js';
import type { QueueRequest } from '../core/queue-types.js';
import { postCallback, type CallbackOptions } from './callback.js';
import {
  Backoff,
  backoffMs,
  isRetryable,
  policyFor,
  retryAfterMs,
  type RetryPolicy,
} from '../core/retry-policy.js';
import type { WorkerMetrics } from './worker-metrics.js';
import { ValidationError } from '../core/errors.js';
import { headerValue } from '../core/http-headers.js';
import { requestProblems } from '../core/http-request-check.js';
import { queueMaxInflight } from '../core/function-rules.js';

export interface WorkerOptions {
  queue: Queue;
  invoker: Invoker;
  /** Calls in flight at once, over all functions (max_inflight). */
  maxInflight: number;
  /** Retries unless a function's annotations say otherwise. */
  retry: RetryPolicy;
  /** A call older than this (from when it was queued) is dead-lettered, not run; 0: no limit. */
  maxAgeMs: number;
  callback: CallbackOptions;
  /**
   * The deadline of each attempt (call_timeout), waits for a connection included; 0 or absent:
   * the function's own timeout (recorded when queued), else `upstreamTimeoutMs`, plus the time a
   * function may take to start.
   */
  callTimeoutMs?: number;
  /** A function's answer when its own timeout is unknown; default 60 s. */
  upstreamTimeoutMs?: number;
  metrics?: WorkerMetrics;
  logger?: Logger;
}

/**
 * How long a call waits when its function is at its limit or slowed down, at the least: long
 * beside the instant it spends handed out, so that it is mostly seen waiting (and cancellable).
 */
const deferMs = 100;
/** How long a function is slowed down after a 429 without Retry-After, at first. */
const firstSlowdownMs = 100;
/** The time a call may wait for its function to start: the gateway holds it that long at most. */
const startAllowanceMs = 30_000;

/** One function's share of the worker: calls in flight, and a pause after 429s. */
interface FunctionSlot {
  inFlight: number;
  pausedUntil: number;
  /** The pause after each 429 in a row that named none (Retry-After). */
  slowdown: Backoff;
}

/**
 * The queue worker: takes calls from the queue and runs them through the gateway, applying each
 * function's retry policy (statuses, backoff with jitter, Retry-After, attempts, maximum age) and
 * concurrency limit, slowing a function down when it answers 429, and posting the result to
 * the call's X-Callback-Url once it is final. A call is settled (acknowledged) only after the
 * function answered and the callback was tried, so a worker killed mid-call leaves it to be run
 * again: at least once, never lost.
 */
export class QueueWorker {
  readonly #options: WorkerOptions & { logger: Logger };
  readonly #slots = new Map<string, FunctionSlot>();

  constructor(options: WorkerOptions) {
    this.#options = { logger: silentLogger, ...options };
  }

  /** Runs until `signal` aborts, then lets the calls in flight finish. */
  run(signal: AbortSignal): Promise<void> {
    return this.#options.queue.consume(
      (req, delivery) => this.#handle(req, delivery),
      { concurrency: this.#options.maxInflight },
      signal,
    );
  }

  async #handle(req: QueueRequest, delivery: Delivery): Promise<Settlement> {
    const { maxAgeMs, metrics } = this.#options;
    const fn = req.Function;
    const { policy, problems } = policyFor(req.Annotations, this.#options.retry);
    if (maxAgeMs > 0 && Date.now() - delivery.queuedAt.getTime() > maxAgeMs) {
      const reason = `older than the maximum age (${maxAgeMs} ms): not run`;
      metrics?.deadLettered(fn);
      await this.#callback(req, delivery, policy, undefined, reason, delivery.attempts.length);
      return { outcome: 'dead-letter', reason };
    }
    if (problems.length > 0) {
      this.#options.logger.warn({ function: fn, problems }, 'retry annotations ignored');
    }
    const request = {
      method: req.Method || 'POST',
      path: req.Path || '/',
      query: req.QueryString,
      headers: req.Header,
    };
    // A call no HTTP request can carry (stored before it was checked, or by another writer)
    // would fail the same way forever: it is given up at once, and nothing is sent.
    const unsendable = requestProblems(request);
    if (unsendable.length > 0) return this.#unsendable(req, delivery, policy, unsendable);
    const slot = this.#slot(fn);
    const limit = queueMaxInflight(
      { annotations: req.Annotations, labels: req.Labels },
      this.#options.maxInflight,
    );
    const now = Date.now();
    if (slot.inFlight >= limit || slot.pausedUntil > now) {
      return { outcome: 'defer', delayMs: Math.max(deferMs, slot.pausedUntil - now) };
    }

    slot.inFlight += 1;
    metrics?.started(fn);
    const attempt = delivery.attempts.length + 1;
    const startedAt = new Date();
    let result: InvokeResult | undefined;
    let error: string | undefined;
    let refused: string | undefined;
    const deadlineMs = attemptDeadlineMs(req, this.#options);
    try {
      result = await this.#options.invoker.invoke(
        fn,
        {
          ...request,
          headers: withRetryHeaders(req.Header, attempt - 1, policy.maxAttempts - 1),
          body: Buffer.from(req.Body, 'base64'),
        },
        // A timeout, not a signal: an AbortSignal a call costs the worker ~1 KB and several µs.
        { timeoutMs: deadlineMs },
      );
    } catch (failure) {
      // The invoker refuses, unsent, what it could never send: as above, given up at once.
      if (failure instanceof ValidationError) refused = failure.message;
      else if ((failure as Error).name === 'TimeoutError') {
        error = `no answer within the deadline (${deadlineMs} ms)`;
      } else error = (failure as Error).message;
    } finally {
      slot.inFlight -= 1;
    }
    if (refused !== undefined) {
      metrics?.finished(fn, 'dead-letter');
      return this.#unsendable(req, delivery, policy, [refused]);
    }
    const outcome: AttemptOutcome = {
      record: {
        attempt,
        startedAt: startedAt.toISOString(),
        durationMs: Math.round(Date.now() - startedAt.getTime()),
        ...(result ? { status: result.status } : { error }),
      },
      bodyExcerpt: result ? bodyExcerpt(result.body) : undefined,
    };
    const asked = result && retryAfterMs(headerValue(result.headers, 'retry-after'));
    this.#pace(slot, result, asked);

    const inRound = attempt - delivery.priorAttempts;
    const retryable = isRetryable(result, policy);
    if (retryable && inRound < policy.maxAttempts) {
      const delayMs = Math.max(backoffMs(policy, inRound), asked ?? 0);
      metrics?.finished(fn, 'retry');
      return {
        outcome: 'retry',
        attempt: outcome,
        delayMs,
        reason: result ? `status ${result.status}` : `no answer: ${error}`,
      };
    }
    await this.#callback(req, delivery, policy, result, error, attempt);
    if (retryable) {
      metrics?.finished(fn, 'dead-letter');
      metrics?.deadLettered(fn);
      return {
        outcome: 'dead-letter',
        attempt: outcome,
        reason: `gave up after ${inRound} attempts: ${result ? `status ${result.status}` : `no answer: ${error}`}`,
      };
    }
    metrics?.finished(fn, result && result.status < 300 ? 'success' : 'failure');
    return { outcome: 'ack', attempt: outcome };
  }

  /** Gives up a call that can never be sent: dead-lettered at once, with why; never run. */
  async #unsendable(
    req: QueueRequest,
    delivery: Delivery,
    policy: RetryPolicy,
    problems: string[],
  ): Promise<Settlement> {
    const reason = `cannot be sent, not tried: ${problems.join('; ')}`;
    this.#options.logger.warn(
      { callId: delivery.callId, function: req.Function, reason },
      'call dead-lettered',
    );
    this.#options.metrics?.deadLettered(req.Function);
    await this.#callback(req, delivery, policy, undefined, reason, delivery.attempts.length);
    return { outcome: 'dead-letter', reason };
  }

  #slot(fn: string): FunctionSlot {
    let slot = this.#slots.get(fn);
    if (!slot) {
      slot = {
        inFlight: 0,
        pausedUntil: 0,
        slowdown: new Backoff({
          minWaitMs: firstSlowdownMs,
          maxWaitMs: Math.max(firstSlowdownMs, this.#options.retry.maxWaitMs),
        }),
      };
      this.#slots.set(fn, slot);
    }
    return slot;
  }

  /**
   * A 429 pauses the function's calls (`asked`: its Retry-After, else a backoff); a success
   * ends the pause.
   */
  #pace(slot: FunctionSlot, result: InvokeResult | undefined, asked: number | undefined): void {
    if (result?.status === 429) {
      slot.pausedUntil = Date.now() + (asked ?? slot.slowdown.next());
    } else if (result && result.status < 400) {
      slot.slowdown.reset();
    }
  }

  /** The final result to the call's X-Callback-Url, if it has one. */
  async #callback(
    req: QueueRequest,
    delivery: Delivery,
    policy: RetryPolicy,
    result: InvokeResult | undefined,
    error: string | undefined,
    attempts: number,
  ): Promise<void> {
    if (!req.CallbackUrl) return;
    const status = result?.status ?? 503;
    const ours: HeaderMap = {
      [OpenFaasHeader.CallId]: delivery.callId,
      [OpenFaasHeader.FunctionName]: req.Function,
      [OpenFaasHeader.FunctionStatus]: String(status),
      [OpenFaasHeader.DurationSeconds]: ((Date.now() - delivery.queuedAt.getTime()) / 1000).toFixed(
        6,
      ),
      [OpenFaasHeader.Retry]: String(Math.max(0, attempts - 1)),
      [OpenFaasHeader.RetryMax]: String(policy.maxAttempts - 1),
    };
    // The function's headers, but ours where both have one (names differ only in case).
    const headers: HeaderMap = {};
    const taken = new Set(Object.keys(ours).map((name) => name.toLowerCase()));
    for (const [name, value] of Object.entries(
      result?.headers ?? { 'content-type': 'text/plain; charset=utf-8' },
    )) {
      if (!taken.has(name.toLowerCase())) headers[name] = value;
    }
    Object.assign(headers, ours);
    const body = result?.body ?? Buffer.from(error ?? '');
    const sent = await postCallback(req.CallbackUrl, body, headers, this.#options.callback);
    this.#options.metrics?.callback(req.Function, sent.delivered);
    if (!sent.delivered) {
      this.#options.logger.warn(
        { callId: delivery.callId, url: req.CallbackUrl, tries: sent.tries, last: sent.last },
        'callback not delivered',
      );
    }
  }
}

/**
 * The deadline of one attempt of `req`: call_timeout when set, else the function's own timeout
 * (recorded when queued; upstream_timeout when unknown) plus the time it may take to start.
 */
export function attemptDeadlineMs(
  req: Pick<QueueRequest, 'FunctionTimeoutMs'>,
  {
    callTimeoutMs,
    upstreamTimeoutMs = 60_000,
  }: Pick<WorkerOptions, 'callTimeoutMs' | 'upstreamTimeoutMs'>,
): number {
  if (callTimeoutMs !== undefined && callTimeoutMs > 0) return callTimeoutMs;
  const own = req.FunctionTimeoutMs;
  return (typeof own === 'number' && own > 0 ? own : upstreamTimeoutMs) + startAllowanceMs;
}

/** The call's headers, with X-Retry and X-Retry-Max so the function can tell a retry. */
function withRetryHeaders(
  headers: Record<string, string[]>,
  retry: number,
  retryMax: number,
): HeaderMap {
  return {
    ...headers,
    [OpenFaasHeader.Retry]: String(retry),
    [OpenFaasHeader.RetryMax]: String(retryMax),
  };
}
