import { createHash } from 'node:crypto';
import {
  IdempotencyKeyReusedError,
  QueueFullError,
  UnavailableError,
  ValidationError,
} from '../core/errors.js';
import type { CallState, DeadLetterQuery, Settlement } from '../core/queue.js';
import type { QueueRequest } from '../core/queue-types.js';

/** The request's own X-Call-Id (the gateway always sets one), whatever its case. */
export function callIdOf(req: QueueRequest): string | undefined {
  for (const [name, values] of Object.entries(req.Header)) {
    if (name.toLowerCase() === 'x-call-id' && values[0]) return values[0];
  }
  return undefined;
}

/** The state an `ack` or `dead-letter` leaves a call in. */
export function toSettledState(
  settlement: Extract<Settlement, { outcome: 'ack' | 'dead-letter' }>,
): CallState {
  if (settlement.outcome === 'dead-letter') return 'dead-lettered';
  const status = settlement.attempt.record.status;
  return status !== undefined && status >= 200 && status < 300 ? 'succeeded' : 'failed';
}

/**
 * An Idempotency-Key as every backend keeps it: a digest of the function and the key, so that
 * the same key sent to another function is another key (a caller cannot claim other callers'
 * keys on functions it does not call), whatever characters the caller sent.
 */
export function scopedIdempotencyKey(req: QueueRequest, key: string): string {
  return createHash('sha256')
    .update(JSON.stringify([req.Function, key]))
    .digest('hex');
}

/**
 * What a reused Idempotency-Key must match: the method, path, query and body (a digest). Headers
 * are left out: the gateway's own (X-Call-Id, X-Start-Time) differ on every try.
 */
export function requestFingerprint(req: QueueRequest): string {
  return createHash('sha256')
    .update(JSON.stringify([req.Method, req.Path, req.QueryString]))
    .update('\n')
    .update(req.Body)
    .digest('hex');
}

/** The answer to a key seen before: the first call's id, or a 422 when the request differs. */
export function sameRequestOr422(
  seen: { callId: string; fingerprint?: string | null },
  fingerprint: string,
): { callId: string; duplicate: true } {
  // A key kept before fingerprints were (an older fnbus) matches any request.
  if (seen.fingerprint && seen.fingerprint !== fingerprint) {
    throw new IdempotencyKeyReusedError(
      'Idempotency-Key was used for another request to this function (method, path, query ' +
        'or body differ): send a new key',
    );
  }
  return { callId: seen.callId, duplicate: true };
}

/** The refusal of a call past the queue's cap. */
export function queueFull(maxQueuedCalls: number): QueueFullError {
  return new QueueFullError(
    `the queue holds ${maxQueuedCalls} calls waiting or running, its most ` +
      '(max_queued_calls): nothing was queued; try again later',
  );
}

/** A redrive stopped part way: its error, saying how many letters went back to the queue first. */
export function redriveStopped<E>(error: E, redriven: number): E {
  if (error instanceof Error) {
    error.message = `${error.message} (${redriven} dead letters were queued again first)`;
  }
  return error;
}

/**
 * Every page of dead letters of `fn` (any: undefined), as a redrive or purge walks them: `page`
 * reads one from a cursor, and the next starts where it ended.
 */
export async function* everyDeadLetterPage<T>(
  fn: string | undefined,
  page: (query: DeadLetterQuery) => Promise<{ items: T[]; next?: string }>,
): AsyncGenerator<T[]> {
  let cursor: string | undefined;
  do {
    const { items, next } = await page({
      limit: 100,
      ...(fn ? { function: fn } : {}),
      ...(cursor ? { cursor } : {}),
    });
    yield items;
    cursor = next;
  } while (cursor !== undefined);
}

/** How long an enqueue waits for a lost connection to come back before it answers 503. */
const reachWaitMs = 5000;

/**
 * Waits for a shared queue's lost connection to come back (`listen` calls `up` then, and returns
 * how to stop listening), `reachWaitMs` at most: while the server is down a caller gets a 503 in
 * seconds, where the client would hold the call through all its reconnects and retries.
 */
export async function awaitReconnect(
  server: string,
  listen: (up: () => void) => () => void,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let unlisten!: () => void;
  const up = await new Promise<boolean>((resolve) => {
    unlisten = listen(() => resolve(true));
    timer = setTimeout(resolve, reachWaitMs, false);
  });
  unlisten();
  clearTimeout(timer);
  if (!up) throw new UnavailableError(`the queue (${server}) cannot be reached`);
}

/** An opaque page cursor: base64url JSON. */
export function encodeCursor(position: unknown): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

/** A cursor this queue made, checked by `valid`; a ValidationError for anything else. */
export function decodeCursor<T>(cursor: string, valid: (value: unknown) => value is T): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (!valid(value)) throw new ValidationError('cursor: not one this listing gave');
  return value;
}
