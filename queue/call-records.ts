import { createHash } from 'node:crypto';
import {
  IdempotencyKeyReusedError,
  QueueFullError,
  UnavailableError,
  ValidationError,
} from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type {
  AttemptRecord,
  BuriedCall,
  CallRecord,
  CallState,
  DeadLetterQuery,
  Delivery,
  DeliveryHandler,
  FunctionQueueStats,
  Settlement,
} from '../core/queue.js';
import type { QueueRequest } from '../core/queue-types.js';

/**
 * What every backend is told, and its default once for all: a backend's own options (its URL,
 * file, queue name) extend it.
 */
export interface QueueOptions {
  /** How long finished and cancelled calls stay visible to status(); default 24 h. */
  retentionMs?: number;
  /** How long an Idempotency-Key is remembered; default 24 h. */
  idempotencyWindowMs?: number;
  /** Most calls waiting or running at once; enqueue and redrive refuse more. Default 100,000. */
  maxQueuedCalls?: number;
  /**
   * How long a delivery stays with a worker that stopped answering (killed) before another gets
   * it (BullMQ's lock duration, JetStream's ack wait; the local queue needs none). Default 30 s.
   */
  leaseMs?: number;
  logger?: Logger;
}

/** The defaults of QueueOptions. */
export const queueDefaults = {
  retentionMs: 24 * 3600_000,
  idempotencyWindowMs: 24 * 3600_000,
  maxQueuedCalls: 100_000,
  leaseMs: 30_000,
} as const;

/** QueueOptions with every default filled in. */
export function queueSettings(options: QueueOptions): Required<Omit<QueueOptions, 'logger'>> {
  return {
    retentionMs: options.retentionMs ?? queueDefaults.retentionMs,
    idempotencyWindowMs: options.idempotencyWindowMs ?? queueDefaults.idempotencyWindowMs,
    maxQueuedCalls: options.maxQueuedCalls ?? queueDefaults.maxQueuedCalls,
    leaseMs: options.leaseMs ?? queueDefaults.leaseMs,
  };
}

/**
 * A call's progress, as every backend keeps it (in its own encoding): what the state machine
 * below reads and writes. Times in ms since the epoch.
 */
export interface CallProgress {
  state: CallState;
  attempts: AttemptRecord[];
  /** When the call was last queued afresh (accepted or redriven): Delivery.queuedAt. */
  queuedAt: number;
  /** Attempts made before `queuedAt`: Delivery.priorAttempts. */
  priorAttempts: number;
  updatedAt: number;
  /** While `queued`: when it is due. */
  nextAttemptAt?: number;
  lastStatus?: number;
  lastBodyExcerpt?: string;
  reason?: string;
}

/** The record the seam shows of a call (`status`, dead letters). */
export function callRecordOf(
  callId: string,
  fn: string,
  enqueuedAt: number,
  call: CallProgress,
): CallRecord {
  const record: CallRecord = {
    callId,
    function: fn,
    state: call.state,
    enqueuedAt: new Date(enqueuedAt).toISOString(),
    updatedAt: new Date(call.updatedAt).toISOString(),
    attempts: call.attempts,
  };
  if (call.state === 'queued' && call.nextAttemptAt !== undefined) {
    record.nextAttemptAt = new Date(call.nextAttemptAt).toISOString();
  }
  if (call.lastStatus !== undefined) record.lastStatus = call.lastStatus;
  if (call.lastBodyExcerpt !== undefined) record.lastBodyExcerpt = call.lastBodyExcerpt;
  if (call.reason !== undefined) record.reason = call.reason;
  return record;
}

/** A call just accepted. */
export function queuedCall(now: number): CallProgress {
  return {
    state: 'queued',
    attempts: [],
    queuedAt: now,
    priorAttempts: 0,
    updatedAt: now,
    nextAttemptAt: now,
  };
}

/** A delivered call marked running. */
export function claimedCall(call: CallProgress, now: number): CallProgress {
  return { ...call, state: 'running', updatedAt: now, nextAttemptAt: undefined };
}

/**
 * What a settlement makes of a running call: `retry` and `defer` queue it again after their
 * delay (a retry records its attempt, last answer and reason; a defer records nothing), `ack`
 * finishes it `succeeded` or `failed` with its last answer, `dead-letter` keeps it as a dead
 * letter with its reason (and the attempt, when one was made).
 */
export function settledCall(call: CallProgress, settlement: Settlement, now: number): CallProgress {
  let change: Partial<CallProgress>;
  switch (settlement.outcome) {
    case 'defer':
      change = { state: 'queued', nextAttemptAt: now + settlement.delayMs };
      break;
    case 'retry': {
      const { record, bodyExcerpt } = settlement.attempt;
      change = {
        state: 'queued',
        nextAttemptAt: now + settlement.delayMs,
        attempts: [...call.attempts, record],
        lastStatus: record.status ?? call.lastStatus,
        lastBodyExcerpt: bodyExcerpt ?? call.lastBodyExcerpt,
        reason: settlement.reason,
      };
      break;
    }
    case 'ack':
    case 'dead-letter': {
      const outcome = settlement.attempt;
      change = {
        state: toSettledState(settlement),
        attempts: outcome ? [...call.attempts, outcome.record] : call.attempts,
        lastStatus: outcome?.record.status,
        lastBodyExcerpt: outcome?.bodyExcerpt,
        reason: settlement.outcome === 'dead-letter' ? settlement.reason : undefined,
      };
    }
  }
  // Object.assign, not a spread followed by properties the call may lack: V8 adds those to the
  // spread's copy one by one the slow way, ~2 µs a settlement (more than the rest of it).
  return Object.assign({}, call, { updatedAt: now, nextAttemptAt: undefined }, change);
}

/** A dead letter queued again: its attempts so far count as earlier rounds. */
export function redrivenCall(letter: CallProgress, now: number): CallProgress {
  return {
    ...letter,
    state: 'queued',
    queuedAt: now,
    priorAttempts: letter.attempts.length,
    updatedAt: now,
    nextAttemptAt: now,
    reason: undefined,
  };
}

/** A call that failed elsewhere, kept as a dead letter. */
export function buriedCall(buried: BuriedCall, now: number): CallProgress {
  return {
    state: 'dead-lettered',
    attempts: buried.attempts,
    queuedAt: now,
    priorAttempts: 0,
    updatedAt: now,
    lastStatus: buried.lastStatus,
    lastBodyExcerpt: buried.lastBodyExcerpt,
    reason: buried.reason,
  };
}

/** A cancelled call: it will not run. */
export function cancelledCall(call: CallProgress, now: number): CallProgress {
  return {
    ...call,
    state: 'cancelled',
    updatedAt: now,
    nextAttemptAt: undefined,
    reason: 'cancelled',
  };
}

/** What the handler is told of a call's delivery. */
export function deliveryOf(callId: string, call: CallProgress, redelivered: boolean): Delivery {
  return {
    callId,
    attempts: call.attempts,
    queuedAt: new Date(call.queuedAt),
    priorAttempts: call.priorAttempts,
    redelivered,
  };
}

/** A handler that throws is a bug, not a decision: the call waits a second and runs again. */
const afterHandlerErrorMs = 1000;

/** The handler's settlement of a delivery; a rejection is a defer (nothing lost to a bug). */
export async function settlementOf(
  handle: DeliveryHandler,
  req: QueueRequest,
  delivery: Delivery,
): Promise<Settlement> {
  try {
    return await handle(req, delivery);
  } catch {
    return { outcome: 'defer', delayMs: afterHandlerErrorMs };
  }
}

/**
 * Which per-function tally a call in `state` counts in, for the cap and stats: `live` (waiting
 * or running), `dead` (dead-lettered), or none (over). Backends keep these tallies on write.
 */
export const tallyOfState: Readonly<Record<CallState, 'live' | 'dead' | undefined>> = {
  queued: 'live',
  running: 'live',
  'dead-lettered': 'dead',
  succeeded: undefined,
  failed: undefined,
  cancelled: undefined,
};

/** One function's tallies, as a backend reads them: O(functions), whatever the backlog. */
export interface FunctionTally {
  /** Calls waiting or running. */
  live: number;
  running: number;
  dead: number;
  /** When the oldest waiting call was accepted (ms); undefined when none waits. */
  oldestQueuedAt?: number;
}

/** Stats from each function's tallies (a null-prototype map: `constructor` is a valid name). */
export function statsOf(
  tallies: Iterable<[string, FunctionTally]>,
  now: number,
): Record<string, FunctionQueueStats> {
  const out = Object.create(null) as Record<string, FunctionQueueStats>;
  for (const [fn, tally] of tallies) {
    if (tally.live <= 0 && tally.dead <= 0 && tally.running <= 0) continue;
    const queued = Math.max(0, tally.live - tally.running);
    out[fn] = {
      queued,
      running: Math.max(0, tally.running),
      deadLettered: Math.max(0, tally.dead),
      oldestQueuedAgeMs:
        queued > 0 && tally.oldestQueuedAt !== undefined
          ? Math.max(0, now - tally.oldestQueuedAt)
          : 0,
    };
  }
  return out;
}

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
