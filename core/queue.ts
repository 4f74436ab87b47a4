import type { QueueRequest } from './queue-types.js';

/** Where a call is in its life. */
export type CallState =
  | 'queued' // waiting: never run yet, or waiting for its next attempt
  | 'running'
  | 'succeeded' // the function answered 2xx
  | 'failed' // the function answered, not 2xx, and no more attempts were wanted
  | 'dead-lettered' // given up after its attempts (or too old): kept for inspection and redrive
  | 'cancelled';

/** One run of a call's function, as the worker saw it. */
export interface AttemptRecord {
  /** 1 for the first run; redrives go on counting. */
  attempt: number;
  /** ISO 8601. */
  startedAt: string;
  durationMs: number;
  /** The HTTP status the call got, when it got one. */
  status?: number;
  /** Why there is no status (connection refused...), or what was wrong with it. */
  error?: string;
}

/** What the queue keeps about a call, for `GET /system/calls/:id` and the dead-letter tools. */
export interface CallRecord {
  callId: string;
  /** `name` or `name.namespace`, as the request named it. */
  function: string;
  state: CallState;
  /** ISO 8601 times. */
  enqueuedAt: string;
  updatedAt: string;
  /** When the next attempt is due, while one is scheduled. */
  nextAttemptAt?: string;
  /** Every run so far, oldest first. */
  attempts: AttemptRecord[];
  /** The last answer's status and the start of its body (dead letters, failures). */
  lastStatus?: number;
  lastBodyExcerpt?: string;
  /** Why it was dead-lettered, failed or cancelled. */
  reason?: string;
}

/** A dead letter: the record and the whole request, so that it can be replayed as it was. */
export interface DeadLetter extends CallRecord {
  request: QueueRequest;
}

/** A dead letter's request as listings show it: no headers, no body, the body's size. */
export interface RequestSummary {
  Method: string;
  Path: string;
  QueryString: string;
  /** The body's size in bytes (decoded). */
  BodyBytes: number;
}

/** A dead letter as a listing shows it: its record, and its request without body or headers. */
export interface DeadLetterSummary extends CallRecord {
  request: RequestSummary;
}

/** One page of dead letters. */
export interface DeadLetterQuery {
  /** `name` or `name.namespace`, as requests named it. */
  function?: string;
  /** The most letters the page holds (it may hold fewer and still have a `next`). */
  limit: number;
  /** Where the last page ended (its `next`); none: from the oldest. */
  cursor?: string;
}

/**
 * Dead letters, oldest first. `next` is there while more may follow: pass it as the next query's
 * `cursor`. A page may be short, even empty, and still have a `next`: every page reads a bounded
 * number of records (and bytes), so that listing never loads every letter at once. Letters
 * changed while paging may be missed or shown twice: a listing is not a snapshot.
 */
export interface DeadLetterPage {
  items: DeadLetterSummary[];
  next?: string;
}

export interface EnqueueOptions {
  /**
   * An `Idempotency-Key`, scoped to the request's function: within the queue's idempotency
   * window, an enqueue to the same function with a key already seen stores nothing and returns
   * the first call's id, if its method, path, query and body are the first call's
   * (IdempotencyKeyReusedError otherwise). The same key to another function is another key.
   */
  idempotencyKey?: string;
  /**
   * The call's X-Call-Id was minted for it here (a random UUID), not sent by the caller, so no
   * other call can hold it: the queue may skip checking that the id is unused.
   */
  freshCallId?: boolean;
}

export interface Enqueued {
  callId: string;
  /** True when an Idempotency-Key matched an earlier call: nothing new was queued. */
  duplicate: boolean;
}

/** What the queue knows about this delivery of a message. */
export interface Delivery {
  callId: string;
  /** The runs so far (a redelivered, retried or redriven call has some). */
  attempts: readonly AttemptRecord[];
  /**
   * When the call was last queued afresh: accepted, or redriven from the dead letters. A
   * maximum age and the attempt limit count from there.
   */
  queuedAt: Date;
  /** How many of `attempts` came before `queuedAt` (earlier rounds, before a redrive). */
  priorAttempts: number;
  /**
   * True when an earlier delivery was never settled (the worker died or its lease ran out), so
   * the function may already have run with this message.
   */
  redelivered: boolean;
}

/** The end of one attempt, as the worker reports it with its settlement. */
export interface AttemptOutcome {
  record: AttemptRecord;
  /** The start of the answer's body, kept with failures and dead letters. */
  bodyExcerpt?: string;
}

/**
 * How a handler settles a delivery. Retry policy (how many attempts, what backoff, which
 * statuses) lives in the worker, which knows the function; a queue only carries the decision out.
 * - `ack`: done; the call is `succeeded` (2xx) or `failed` per the attempt's status.
 * - `retry`: run again after `delayMs`; the attempt is recorded.
 * - `dead-letter`: stop trying; keep the call where an operator can inspect or redrive it.
 * - `defer`: not run now (its function is at its concurrency limit or slowed down); deliver again
 *   after `delayMs`, no attempt recorded.
 */
export type Settlement =
  | { outcome: 'ack'; attempt: AttemptOutcome }
  | { outcome: 'retry'; attempt: AttemptOutcome; delayMs: number; reason: string }
  | { outcome: 'dead-letter'; attempt?: AttemptOutcome; reason: string }
  | { outcome: 'defer'; delayMs: number };

/**
 * Called once per delivery, and marks the call `running` first. A rejection is a bug, not a
 * decision: the queue treats it as a `defer` of a second, so that no message is lost to a thrown
 * error.
 */
export type DeliveryHandler = (req: QueueRequest, delivery: Delivery) => Promise<Settlement>;

export interface ConsumeOptions {
  /** How many deliveries may be in the handler at once (the worker's max_inflight). */
  concurrency: number;
}

export interface DeadLetterFilter {
  callId?: string;
  /** `name` or `name.namespace`, as requests named it. */
  function?: string;
}

/**
 * A call that failed outside the queue (a connector's sync delivery, after its own retries), to
 * keep as a dead letter beside the async path's own: listed, redriven and purged the same way.
 */
export interface BuriedCall {
  /** The call as it was made; its X-Call-Id is the dead letter's id (one is made if absent). */
  request: QueueRequest;
  attempts: AttemptRecord[];
  lastStatus?: number;
  lastBodyExcerpt?: string;
  reason: string;
}

/** Per function, at this moment: for metrics and `fnbus queue` views. */
export interface FunctionQueueStats {
  queued: number;
  running: number;
  deadLettered: number;
  /** Age of the oldest call waiting to run, in ms; 0 when none waits. */
  oldestQueuedAgeMs: number;
}

/**
 * The async path's queue: the embedded one (on disk), BullMQ (Redis) and NATS JetStream. Besides
 * carrying messages, it keeps each call's record (state, attempts) and the dead letters, in the
 * same store, so that every worker and gateway sharing the backend sees the same answers. One
 * contract test suite runs against every implementation.
 */
export interface Queue {
  /**
   * Stores the message durably before resolving: once it resolves, the gateway may answer 202.
   * QueueFullError when the queue already holds its most calls waiting or running
   * (`maxQueuedCalls`): nothing is stored.
   */
  enqueue(req: QueueRequest, options?: EnqueueOptions): Promise<Enqueued>;
  /**
   * Hands messages to `handle` until `signal` aborts, then stops taking new ones, waits for the
   * handlers in flight to settle, and resolves. A message is only removed once settled: a worker
   * that dies with it in hand has it delivered again (to it or another worker).
   */
  consume(handle: DeliveryHandler, options: ConsumeOptions, signal: AbortSignal): Promise<void>;
  /** The call's record; undefined when unknown (or past the queue's retention). */
  status(callId: string): Promise<CallRecord | undefined>;
  /**
   * Cancels a call that waits to run: it will not run. False when it is running or over
   * (nothing changes then); NotFoundError when unknown.
   */
  cancel(callId: string): Promise<boolean>;
  /** A page of dead letters, without their bodies: see DeadLetterPage. */
  deadLetters(query: DeadLetterQuery): Promise<DeadLetterPage>;
  /** One dead letter, whole (its request with headers and body); undefined when there is none. */
  deadLetter(callId: string): Promise<DeadLetter | undefined>;
  /**
   * Queues the matching dead letters again, as they were, a bounded batch at a time; returns
   * their call ids. Up to the queue's cap: past it, QueueFullError (those before it are queued).
   */
  redrive(filter?: DeadLetterFilter): Promise<string[]>;
  /** Deletes the matching dead letters, a bounded batch at a time; returns how many. */
  purge(filter?: DeadLetterFilter): Promise<number>;
  /** Stores a dead letter made elsewhere (see BuriedCall); returns its call id. */
  bury(call: BuriedCall): Promise<string>;
  /** Keyed by function (`name` or `name.namespace`, as requests named it). */
  stats(): Promise<Record<string, FunctionQueueStats>>;
  /**
   * Releases connections and files. Called while consume() runs, it is a process going away:
   * consume() returns at once, and what it held is delivered again later (not settled here).
   */
  close(): Promise<void>;
}

/** The default and the largest `limit` of a dead-letter page. */
export const deadLetterPageDefault = 100;
export const deadLetterPageMax = 1000;
/**
 * How many bytes of stored letters one page may read (at least one letter is read): a page of
 * large letters is cut short, so that a listing's memory stays bounded whatever the letters hold.
 */
export const deadLetterPageBytes = 8 * 1024 * 1024;

/** The size of a base64 text's bytes, from its length and its last two characters. */
export function base64Bytes(length: number, tail: string): number {
  if (length === 0) return 0;
  const padding = tail.endsWith('==') ? 2 : tail.endsWith('=') ? 1 : 0;
  return Math.floor(length / 4) * 3 - padding;
}

/** A dead letter's request, as listings show it. */
export function summarizeRequest(req: QueueRequest): RequestSummary {
  return {
    Method: req.Method,
    Path: req.Path,
    QueryString: req.QueryString,
    BodyBytes: base64Bytes(req.Body.length, req.Body.slice(-2)),
  };
}

/** How many characters of an answer's body a call record or dead letter keeps. */
const bodyExcerptChars = 512;

/** The start of an answer's body, as records keep it (UTF-8, cut before decoding the rest). */
export function bodyExcerpt(body: Uint8Array): string {
  return Buffer.from(body.subarray(0, bodyExcerptChars * 4))
    .toString('utf8')
    .slice(0, bodyExcerptChars);
}
