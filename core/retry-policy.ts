import type { EnvReader } from './config.js';
import { parseDurationMs } from './duration.js';
import { headerValue } from './http-headers.js';
import type { InvokeResult } from './invoker.js';
import { OpenFaasAnnotation, OpenFaasHeader } from './openfaas-names.js';

/** How calls to a function are retried (the async worker, connectors): defaults, or its annotations. */
export interface RetryPolicy {
  /** Runs in a round (the first one included) before the call is dead-lettered. */
  maxAttempts: number;
  /** Statuses that are retried; errors (≥ 400) marked X-OpenFaaS-Internal and no answer always are. */
  retryCodes: ReadonlySet<number>;
  /** The first wait; each later one doubles, up to maxWaitMs, with jitter. */
  minWaitMs: number;
  maxWaitMs: number;
}

/** OpenFaaS Pro's queue-worker defaults (retry_http_codes), with attempts and waits of our own. */
export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 10,
  retryCodes: new Set([408, 429, 500, 502, 503, 504]),
  minWaitMs: 1000,
  maxWaitMs: 120_000,
};

/**
 * The policy for a function: `defaults`, overridden by its `com.openfaas.retry.attempts`,
 * `.codes`, `.min_wait` and `.max_wait` annotations. A value that does not parse is reported in
 * `problems` and the default kept, so one typo does not stop the function's calls.
 */
export function policyFor(
  annotations: Readonly<Record<string, string>> | undefined,
  defaults: RetryPolicy,
): { policy: RetryPolicy; problems: string[] } {
  // Most functions set none of them: the defaults as they are (this runs for every call).
  if (
    annotations === undefined ||
    (annotations[OpenFaasAnnotation.RetryAttempts] === undefined &&
      annotations[OpenFaasAnnotation.RetryCodes] === undefined &&
      annotations[OpenFaasAnnotation.RetryMinWait] === undefined &&
      annotations[OpenFaasAnnotation.RetryMaxWait] === undefined)
  ) {
    return { policy: defaults, problems: [] };
  }
  const problems: string[] = [];
  const policy = { ...defaults };
  const get = (key: string) => {
    const value = annotations?.[key]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const attempts = get(OpenFaasAnnotation.RetryAttempts);
  if (attempts !== undefined) {
    if (/^\d+$/.test(attempts) && Number(attempts) >= 1) policy.maxAttempts = Number(attempts);
    else problems.push(`${OpenFaasAnnotation.RetryAttempts}: "${attempts}" is not a number ≥ 1`);
  }
  const codes = get(OpenFaasAnnotation.RetryCodes);
  if (codes !== undefined) {
    const parsed = parseStatusList(codes);
    if (parsed) policy.retryCodes = parsed;
    else problems.push(`${OpenFaasAnnotation.RetryCodes}: "${codes}" is not a list of statuses`);
  }
  for (const [key, field] of [
    [OpenFaasAnnotation.RetryMinWait, 'minWaitMs'],
    [OpenFaasAnnotation.RetryMaxWait, 'maxWaitMs'],
  ] as const) {
    const text = get(key);
    if (text === undefined) continue;
    const ms = parseDurationMs(text);
    if (ms === undefined) problems.push(`${key}: "${text}" is not a duration`);
    else policy[field] = ms;
  }
  if (policy.maxWaitMs < policy.minWaitMs) policy.maxWaitMs = policy.minWaitMs;
  return { policy, problems };
}

/**
 * A retry policy from env (`max_retry_attempts`, `retry_http_codes`, `initial_retry_wait`,
 * `max_retry_wait`, OpenFaaS Pro's queue-worker names) over `defaults`; problems go to `read`.
 */
export function readRetryPolicy(read: EnvReader, defaults: RetryPolicy): RetryPolicy {
  const codesText = read.string('retry_http_codes');
  let retryCodes = defaults.retryCodes;
  if (codesText !== undefined) {
    const parsed = parseStatusList(codesText);
    if (parsed) retryCodes = parsed;
    else read.problem(`retry_http_codes: "${codesText}" is not a list of statuses (e.g. 429,503)`);
  }
  const minWaitMs = read.durationMs('initial_retry_wait', defaults.minWaitMs);
  const maxWaitMs = read.durationMs('max_retry_wait', defaults.maxWaitMs);
  if (maxWaitMs < minWaitMs) read.problem('max_retry_wait: shorter than initial_retry_wait');
  return {
    maxAttempts: read.integer('max_retry_attempts', defaults.maxAttempts, { min: 1 }),
    retryCodes,
    minWaitMs,
    maxWaitMs,
  };
}

/** `408,429, 503` → the set; undefined unless every item is an HTTP status. */
export function parseStatusList(text: string): Set<number> | undefined {
  const items = text.split(',').map((item) => item.trim());
  if (items.some((item) => !/^[1-5]\d\d$/.test(item))) return undefined;
  return new Set(items.map(Number));
}

/**
 * Whether a call is tried again (the async worker and the connectors alike): no answer at all; a
 * status in the policy; or an error fnbus (or OpenFaaS) made itself rather than the function, a
 * status of 400 or more marked `X-OpenFaaS-Internal`, as OpenFaaS Pro's queue-worker retries
 * those. A success carrying that header (a function may set any header) is a success.
 */
export function isRetryable(
  result: Pick<InvokeResult, 'status' | 'headers'> | undefined,
  policy: Pick<RetryPolicy, 'retryCodes'>,
): boolean {
  if (result === undefined) return true;
  if (policy.retryCodes.has(result.status)) return true;
  return result.status >= 400 && headerValue(result.headers, OpenFaasHeader.Internal) !== undefined;
}

/** The range a backoff moves in: the first wait, and the longest. */
export type BackoffRange = Pick<RetryPolicy, 'minWaitMs' | 'maxWaitMs'>;

/**
 * The one backoff of fnbus: the wait before retry number `retry` (1 for the first retry),
 * exponential from minWaitMs, capped at maxWaitMs, with "equal jitter" (half fixed, half random)
 * so that calls failing together do not all come back together, yet never much sooner than asked.
 */
export function backoffMs(range: BackoffRange, retry: number, random = Math.random): number {
  const ceiling = Math.min(range.maxWaitMs, range.minWaitMs * 2 ** Math.max(0, retry - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * `backoffMs` for a loop that waits longer each time it fails and starts over once it succeeds
 * (a reconnect, a restart, a poll): `next()` is the wait after one more failure, `reset()` after
 * a success.
 */
export class Backoff {
  readonly #range: BackoffRange;
  readonly #random: () => number;
  #failures = 0;

  constructor(range: BackoffRange, random = Math.random) {
    this.#range = range;
    this.#random = random;
  }

  /** Failures since the last reset. */
  get failures(): number {
    return this.#failures;
  }

  next(): number {
    this.#failures += 1;
    return backoffMs(this.#range, this.#failures, this.#random);
  }

  reset(): void {
    this.#failures = 0;
  }
}

/** `Retry-After` as seconds or an HTTP date, in ms from now; undefined if absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
