import { createHash } from 'node:crypto';
import { IdempotencyKeyReusedError, QueueFullError, ValidationError } from '../core/errors.js';
import type { CallState, Settlement } from '../core/queue.js';
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
