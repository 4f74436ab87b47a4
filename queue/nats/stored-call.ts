import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { CallRecord, RequestSummary } from '../../core/queue.js';
import type { QueueRequest } from '../../core/queue-types.js';
import type { CallProgress } from '../call-records.js';
import type { RecordBucket } from './record-bucket.js';

/** A call record as the JetStream queue keeps it in its KV buckets. */
export interface StoredCall extends CallRecord {
  /**
   * The Nats-Msg-Id of the one message that currently carries the call. Enqueue and each redrive
   * publish a new one; a delivered message with another id is a stale copy and is dropped.
   */
  messageId: string;
  /** ISO 8601: accepted, or last redriven (Delivery.queuedAt). */
  queuedAt: string;
  /** Attempts made before `queuedAt` (Delivery.priorAttempts). */
  priorAttempts: number;
  /**
   * Dead letters kept by an older fnbus: the request, inline. Now the request goes to the
   * letters bucket (`letterKey`), so that records stay small to scan.
   */
  request?: QueueRequest;
  /** Dead letters: the sequence of their request's message in the letters stream. */
  letterSeq?: number;
  /** Dead letters kept by an older fnbus: the key of their request in the letters bucket. */
  letterKey?: string;
  /** Dead letters: their request as listings show it. */
  letter?: RequestSummary;
}

/** A record as read, with the revision a compare-and-set needs. */
export interface CallEntry {
  key: string;
  revision: number;
  call: StoredCall;
}

/** The record as the seam shows it, without the queue's own bookkeeping. */
export function toCallRecord(stored: StoredCall): CallRecord {
  const {
    messageId: _id,
    queuedAt: _at,
    priorAttempts: _prior,
    request: _req,
    letterKey: _key,
    letterSeq: _seq,
    letter: _letter,
    ...record
  } = stored;
  return record;
}

/** A stored call's progress, as the state machine (call-records) reads it. */
export function progressOf(stored: StoredCall): CallProgress {
  const call: CallProgress = {
    state: stored.state,
    attempts: stored.attempts,
    queuedAt: msOf(stored.queuedAt),
    priorAttempts: stored.priorAttempts,
    updatedAt: msOf(stored.updatedAt),
  };
  if (stored.nextAttemptAt !== undefined) call.nextAttemptAt = msOf(stored.nextAttemptAt);
  if (stored.lastStatus !== undefined) call.lastStatus = stored.lastStatus;
  if (stored.lastBodyExcerpt !== undefined) call.lastBodyExcerpt = stored.lastBodyExcerpt;
  if (stored.reason !== undefined) call.reason = stored.reason;
  return call;
}

/** `stored` with the state machine's `call` written into it. */
export function withProgress(
  stored: Pick<StoredCall, 'callId' | 'function' | 'enqueuedAt' | 'messageId'> &
    Partial<StoredCall>,
  call: CallProgress,
): StoredCall {
  // Built field by field (the state machine's fields, then the rest of `stored`): a spread of
  // a parsed record overwritten with these fields costs several microseconds.
  const next: StoredCall = {
    callId: stored.callId,
    function: stored.function,
    enqueuedAt: stored.enqueuedAt,
    messageId: stored.messageId,
    state: call.state,
    attempts: call.attempts,
    queuedAt: isoOf(call.queuedAt),
    priorAttempts: call.priorAttempts,
    updatedAt: isoOf(call.updatedAt),
  };
  if (call.state === 'queued' && call.nextAttemptAt !== undefined) {
    next.nextAttemptAt = isoOf(call.nextAttemptAt);
  }
  if (call.lastStatus !== undefined) next.lastStatus = call.lastStatus;
  if (call.lastBodyExcerpt !== undefined) next.lastBodyExcerpt = call.lastBodyExcerpt;
  if (call.reason !== undefined) next.reason = call.reason;
  for (const field in stored) {
    if (!(field in next) && !progressFields.has(field)) {
      (next as unknown as Record<string, unknown>)[field] = (
        stored as unknown as Record<string, unknown>
      )[field];
    }
  }
  return next;
}

/** The fields withProgress writes from the state machine (absent when it says undefined). */
const progressFields = new Set([
  'state',
  'attempts',
  'queuedAt',
  'priorAttempts',
  'updatedAt',
  'nextAttemptAt',
  'lastStatus',
  'lastBodyExcerpt',
  'reason',
]);

/**
 * ISO 8601 texts of recent seconds (up to the seconds, no fraction), both ways: records are
 * written and read with times of the same few seconds over and over, and `toISOString` and
 * `Date.parse` cost about a microsecond each.
 */
const textOfSecond = new Map<number, string>();
const secondOfText = new Map<string, number>();

function secondText(start: number): string {
  let text = textOfSecond.get(start);
  if (text === undefined) {
    if (textOfSecond.size >= 256) {
      textOfSecond.clear();
      secondOfText.clear();
    }
    text = new Date(start).toISOString().slice(0, 19);
    textOfSecond.set(start, text);
    secondOfText.set(text, start);
  }
  return text;
}

/** `new Date(ms).toISOString()`, the second's part from a cache. */
export function isoOf(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= 253402300800000) return new Date(ms).toISOString();
  const fraction = ms % 1000;
  return `${secondText(ms - fraction)}.${String(fraction).padStart(3, '0')}Z`;
}

/** `Date.parse(iso)`, the second's part from a cache for texts as `isoOf` writes them. */
export function msOf(iso: string): number {
  if (iso.length === 24 && iso.charCodeAt(19) === 46 /* . */ && iso.endsWith('Z')) {
    const start = secondOfText.get(iso.slice(0, 19));
    if (start !== undefined && isDigits(iso, 20, 23)) return start + Number(iso.slice(20, 23));
    const ms = Date.parse(iso);
    if (Number.isInteger(ms) && ms >= 0) isoOf(ms); // its second, for next time
    return ms;
  }
  return Date.parse(iso);
}

function isDigits(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const code = text.charCodeAt(i);
    if (code < 48 || code > 57) return false;
  }
  return true;
}

/**
 * A function's subject token: its name when made of letters, digits, `-` and `_` (the usual),
 * else `=` and its name in base64url, so that a subject names one function and gives it back.
 */
export function subjectToken(fn: string): string {
  return /^[-\w]+$/.test(fn) ? fn : `=${Buffer.from(fn).toString('base64url')}`;
}

/** The function a subject token names (see subjectToken). */
export function functionOfToken(token: string): string {
  return token.startsWith('=') ? Buffer.from(token.slice(1), 'base64url').toString() : token;
}

/**
 * The KV key of a call id. KV keys allow few characters, while an X-Call-Id is the caller's
 * text: ids made of safe characters (UUIDs) are kept as they are, anything else is encoded.
 * Plain keys never contain a dot, so the two forms cannot collide.
 */
export function callKey(callId: string): string {
  return /^[-\w=]{1,256}$/.test(callId)
    ? callId
    : `b64.${Buffer.from(callId).toString('base64url')}`;
}

/** The record under `key`, or undefined when there is none (or a deletion marker). */
export async function readCall(bucket: RecordBucket, key: string): Promise<CallEntry | undefined> {
  const entry = await bucket.kv.get(key);
  if (!entry || entry.operation !== 'PUT') return undefined;
  return { key, revision: entry.revision, call: entry.json<StoredCall>() };
}

/**
 * Creates `key` holding `value`; undefined when it exists with another value. Finding this very
 * value there means an earlier try succeeded and only its answer was lost: `value` must be unique
 * to the caller, so that a create can be retried.
 */
export async function createOnce(
  bucket: RecordBucket,
  key: string,
  value: string,
): Promise<number | undefined> {
  try {
    return await bucket.create(key, value);
  } catch (error) {
    if (!isStale(error)) throw error;
  }
  const entry = await bucket.kv.get(key);
  return entry?.operation === 'PUT' && entry.string() === value ? entry.revision : undefined;
}

/** Replaces the record at `revision`; undefined when it changed since. */
export async function updateCall(
  bucket: RecordBucket,
  key: string,
  call: StoredCall,
  revision: number,
): Promise<number | undefined> {
  try {
    return await bucket.update(key, JSON.stringify(call), revision);
  } catch (error) {
    if (isStale(error)) return undefined;
    throw error;
  }
}

/** A compare-and-set that lost: the key is not at the revision expected. */
export function isStale(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
      error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}
