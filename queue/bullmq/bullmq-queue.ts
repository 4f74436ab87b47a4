import { randomUUID } from 'node:crypto';
import {
  Queue as BullQueue,
  DelayedError,
  UnrecoverableError,
  Worker,
  type Job,
  type JobState,
} from 'bullmq';
import { Redis } from 'ioredis';
import {
  ConflictError,
  FnbusError,
  InsufficientStorageError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import type {
  AttemptRecord,
  BuriedCall,
  CallRecord,
  CallState,
  ConsumeOptions,
  DeadLetter,
  DeadLetterFilter,
  DeliveryHandler,
  Enqueued,
  EnqueueOptions,
  FunctionQueueStats,
  Queue,
  Settlement,
} from '../../core/queue.js';
import type { QueueRequest } from '../../core/queue-types.js';
import { callIdOf, toSettledState } from '../call-records.js';

export interface BullmqQueueOptions {
  /** `redis://host:port[/db]`. */
  url: string;
  /** The BullMQ queue name; default `fnbus-async`. */
  name?: string;
  /** How long finished and cancelled calls stay visible to status(); default 24 h. */
  retentionMs?: number;
  /** How long an Idempotency-Key is remembered; default 24 h. */
  idempotencyWindowMs?: number;
  /**
   * How long a worker's hold on a call lasts without renewal: a killed worker's calls are
   * delivered again this long (and up to one stalled check more) after it died; default 30 s.
   */
  lockDurationMs?: number;
  logger?: Logger;
}

/** What a job's data holds: the request and the call's record so far. */
interface CallData {
  request: QueueRequest;
  attempts: AttemptRecord[];
  /** When the call was last queued afresh (accepted or redriven), in ms. */
  queuedAt: number;
  priorAttempts: number;
  updatedAt: number;
  /** When the call is due, in ms: its enqueue, redrive, or the end of its retry or defer delay. */
  nextAttemptAt: number;
  lastStatus?: number;
  lastBodyExcerpt?: string;
  reason?: string;
  /**
   * BullMQ's count of deliveries started (`attemptsStarted`) when the last one was settled: a
   * delivery that finds more than one start since was preceded by one never settled.
   */
  settledStarts: number;
}

/** What a completed job returns: an acknowledged call's outcome, stored with its completion. */
interface AckedCall {
  state: 'succeeded' | 'failed';
  attempts: AttemptRecord[];
  lastStatus?: number;
  lastBodyExcerpt?: string;
}

type CallJob = Job<CallData, AckedCall>;

interface Consumer {
  worker: Worker<CallData, AckedCall>;
  stop: () => void;
  done: Promise<void>;
}

/** A handler that throws is a bug, not a decision: the call waits a second and runs again. */
const afterHandlerErrorMs = 1000;
/** How long an enqueue waits for a Redis connection that is down before it answers 503. */
const reachWaitMs = 5000;
/** How long an enqueue holds its call id between its checks and the job's creation. */
const claimTtlMs = 5 * 60_000;

/**
 * Checks an enqueue: returns `{'duplicate', firstCallId}` for an Idempotency-Key seen within the
 * window, `{'taken'}` for a call id in use (a job, a cancelled call, or another enqueue's claim),
 * else claims the id (and the key) and returns `{'ok'}`. One script, so two racing enqueues cannot
 * both pass: BullMQ itself would silently merge a second job with the same id. Run again with the
 * same nonce (ioredis resends a command whose answer a reconnect lost), it answers `ok` again.
 * KEYS: job hash, cancelled tombstone, claim[, idempotency key]; ARGV: call id, nonce, claim ttl,
 * idempotency window.
 */
const enqueueScript = `
local claim = redis.call('GET', KEYS[3])
if claim == ARGV[2] then return {'ok'} end
if KEYS[4] then
  local first = redis.call('GET', KEYS[4])
  if first then return {'duplicate', first} end
end
if claim or redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return {'taken'} end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[4]) end
return {'ok'}
`;

/**
 * Cancels a waiting call: takes its id out of BullMQ's wait, paused, prioritized and delayed sets
 * in one step, so that no worker can take it any more (BullMQ's remove() would as well delete a
 * job that finished meanwhile), and keeps what its record needs in a tombstone hash for the
 * retention. 1: cancelled; 0: running, over or already cancelled; -1: unknown.
 * KEYS: job hash, tombstone, wait, paused, prioritized, delayed; ARGV: id, retention, now.
 */
const cancelScript = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  return -1
end
local taken = redis.call('LREM', KEYS[3], 0, ARGV[1]) + redis.call('LREM', KEYS[4], 0, ARGV[1])
  + redis.call('ZREM', KEYS[5], ARGV[1]) + redis.call('ZREM', KEYS[6], ARGV[1])
if taken == 0 then return 0 end
local job = redis.call('HMGET', KEYS[1], 'data', 'timestamp')
redis.call('HSET', KEYS[2], 'data', job[1], 'timestamp', job[2], 'cancelledAt', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`;

/**
 * Moves a job just added with a long delay to the failed set: a dead letter made elsewhere.
 * KEYS: delayed, failed, job hash; ARGV: id, reason, now.
 */
const buryScript = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[3], 'failedReason', ARGV[2], 'finishedOn', ARGV[3], 'processedOn', ARGV[3])
return 1
`;

/** A buried call is added with this delay, then moved to the failed set in one step. */
const buryDelayMs = 100 * 365 * 24 * 3600_000;

/**
 * The async queue on Redis, through BullMQ: one job per call, its id the call id. The job's data
 * holds the request and the call's record (attempts, last answer, reason); BullMQ's states are
 * the call's: waiting/delayed are `queued`, active is `running`, completed jobs are acknowledged
 * calls (their return value says `succeeded` or `failed`), and failed jobs are the dead letters.
 * `retry` and `defer` move the job to delayed without using BullMQ's own attempts; a killed
 * worker's jobs come back through BullMQ's stalled-job check, marked `redelivered`. Any number of
 * gateways and workers may share one Redis and queue name.
 */
export class BullmqQueue implements Queue {
  readonly #url: string;
  readonly #name: string;
  readonly #retentionMs: number;
  readonly #idempotencyWindowMs: number;
  readonly #lockDurationMs: number;
  readonly #logger: Logger;
  /** For enqueue, status and the dead-letter tools: a command waits ~10 s for Redis, then fails. */
  readonly #client: Redis;
  readonly #queue: BullQueue<CallData, AckedCall>;
  readonly #consumers = new Set<Consumer>();
  #closed = false;

  constructor(options: BullmqQueueOptions) {
    this.#url = options.url;
    this.#name = options.name ?? 'fnbus-async';
    this.#retentionMs = options.retentionMs ?? 24 * 3600_000;
    this.#idempotencyWindowMs = options.idempotencyWindowMs ?? 24 * 3600_000;
    this.#lockDurationMs = options.lockDurationMs ?? 30_000;
    this.#logger = (options.logger ?? silentLogger).child({ queue: this.#name });
    this.#client = this.#connect({});
    this.#queue = new BullQueue<CallData, AckedCall>(this.#name, { connection: this.#client });
    this.#queue.on('error', (error) => this.#logger.warn({ err: error }, 'BullMQ queue error'));
  }

  async enqueue(req: QueueRequest, options: EnqueueOptions = {}): Promise<Enqueued> {
    try {
      await this.#reachable();
      return await this.#enqueue(req, options);
    } catch (error) {
      throw redisError(error);
    }
  }

  /**
   * Resolves once the connection is up, waiting `reachWaitMs` at most: while Redis is down a
   * caller gets a 503 in seconds, where ioredis would hold the call through all its reconnects
   * (a minute and more).
   */
  async #reachable(): Promise<void> {
    if (this.#client.status === 'ready') return;
    const client = this.#client;
    let onReady!: () => void;
    let timer: NodeJS.Timeout | undefined;
    const up = await new Promise<boolean>((resolve) => {
      onReady = () => resolve(true);
      client.once('ready', onReady);
      timer = setTimeout(resolve, reachWaitMs, false);
    });
    client.off('ready', onReady);
    clearTimeout(timer);
    if (!up) throw new UnavailableError('the queue (Redis) cannot be reached');
  }

  async #enqueue(req: QueueRequest, options: EnqueueOptions): Promise<Enqueued> {
    const callId = callIdOf(req) ?? randomUUID();
    // BullMQ refuses these as job ids; the gateway's own ids are UUIDs.
    if (String(parseInt(callId, 10)) === callId || callId.includes(':')) {
      throw new ValidationError(`X-Call-Id "${callId}": this queue takes no integer or ':' ids`);
    }
    const idempotency = options.idempotencyKey;
    // A minted id without a key needs no checks: one round trip (the job's creation) per call.
    const held =
      options.freshCallId && idempotency === undefined
        ? []
        : await this.#claim(callId, idempotency);
    if (!Array.isArray(held)) return held;
    const now = Date.now();
    const data: CallData = {
      request: req,
      attempts: [],
      queuedAt: now,
      priorAttempts: 0,
      updatedAt: now,
      nextAttemptAt: now,
      settledStarts: 0,
    };
    try {
      await this.#queue.add(req.Function, data, {
        jobId: callId,
        timestamp: now,
        // Acknowledged calls answer status() for the retention; dead letters stay until purged.
        removeOnComplete: { age: Math.ceil(this.#retentionMs / 1000) },
        removeOnFail: false,
        stackTraceLimit: 0,
      });
    } catch (error) {
      // Not queued: free the id and the key for the caller's next try.
      if (held.length > 0) await this.#client.del(...held).catch(() => 0);
      throw error;
    }
    // The job holds the id from now on; the claim would expire anyway, so the caller need not
    // wait for its removal.
    if (held[0] !== undefined) void this.#client.del(held[0]).catch(() => 0);
    return { callId, duplicate: false };
  }

  /**
   * Claims a call id (and its Idempotency-Key) until the job exists: the claimed keys, to free
   * once done, or the first call's id when the key was seen. Throws when the id is taken.
   */
  async #claim(callId: string, idempotency: string | undefined): Promise<string[] | Enqueued> {
    const keys = [this.#queue.toKey(callId), this.#key('cancelled', callId)];
    const claim = this.#key('claim', callId);
    const held = idempotency === undefined ? [claim] : [claim, this.#key('key', idempotency)];
    const [verdict, firstCallId] = (await this.#client.eval(
      enqueueScript,
      keys.length + held.length,
      ...keys,
      ...held,
      callId,
      randomUUID(),
      claimTtlMs,
      this.#idempotencyWindowMs,
    )) as [string, string?];
    if (verdict === 'duplicate' && firstCallId !== undefined) {
      return { callId: firstCallId, duplicate: true };
    }
    if (verdict === 'taken') {
      throw new ConflictError(`call id ${callId} is taken: send another X-Call-Id`);
    }
    return held;
  }

  async consume(handle: DeliveryHandler, options: ConsumeOptions, signal: AbortSignal) {
    if (this.#closed || signal.aborted) return;
    // A worker's connection retries its commands until Redis is back (BullMQ requires it of the
    // connection it blocks on): a settlement waits out an outage instead of being lost.
    const client = this.#connect({ maxRetriesPerRequest: null });
    const worker = new Worker<CallData, AckedCall>(
      this.#name,
      (job, token) => this.#deliver(job, token, handle),
      {
        connection: client,
        concurrency: Math.max(1, options.concurrency),
        lockDuration: this.#lockDurationMs,
        stalledInterval: Math.max(100, Math.floor(this.#lockDurationMs / 2)),
        // A stalled job is always delivered again, never failed: dead letters are the handler's.
        maxStalledCount: Number.MAX_SAFE_INTEGER,
      },
    );
    worker.on('error', (error) => this.#logger.warn({ err: error }, 'BullMQ worker error'));
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    signal.addEventListener('abort', stop, { once: true });
    const done = stopped
      // Aborted: take no more jobs and let those in hand settle. Closed under it (a process going
      // away): abandon them; BullMQ's stalled check hands them out again.
      .then(() => worker.close(this.#closed))
      .finally(() => {
        signal.removeEventListener('abort', stop);
        client.disconnect();
      });
    const consumer = { worker, stop, done };
    this.#consumers.add(consumer);
    try {
      await done;
    } finally {
      this.#consumers.delete(consumer);
    }
  }

  async #deliver(job: CallJob, token: string | undefined, handle: DeliveryHandler) {
    const data = job.data;
    let settlement: Settlement;
    try {
      settlement = await handle(data.request, {
        callId: String(job.id),
        attempts: data.attempts,
        queuedAt: new Date(data.queuedAt),
        priorAttempts: data.priorAttempts,
        redelivered: job.attemptsStarted > data.settledStarts + 1,
      });
    } catch {
      settlement = { outcome: 'defer', delayMs: afterHandlerErrorMs };
    }
    // Closed under it: the delivery is abandoned, as by a kill. A DelayedError makes BullMQ leave
    // the job as it is.
    if (this.#closed) throw new DelayedError();
    if (settlement.outcome === 'ack') {
      const { record, bodyExcerpt } = settlement.attempt;
      return {
        state: toSettledState(settlement) as AckedCall['state'],
        attempts: [...data.attempts, record],
        lastStatus: record.status,
        lastBodyExcerpt: bodyExcerpt,
      };
    }
    try {
      await this.#settleUnacked(job, token, settlement);
    } catch (error) {
      if (error instanceof UnrecoverableError) throw error;
      // Not written (the lock was lost to the stalled check, or Redis failed): leave the job
      // alone; unless it moved on, its lock runs out and it is delivered again.
      this.#logger.warn({ err: error, callId: job.id }, 'settlement not written');
    }
    throw new DelayedError();
  }

  /** Retry, defer and dead-letter: the record into the job's data, then the job where it goes. */
  async #settleUnacked(
    job: CallJob,
    token: string | undefined,
    settlement: Exclude<Settlement, { outcome: 'ack' }>,
  ): Promise<void> {
    const data = job.data;
    const now = Date.now();
    const next: CallData = { ...data, updatedAt: now, settledStarts: job.attemptsStarted };
    const outcome = settlement.outcome === 'defer' ? undefined : settlement.attempt;
    if (outcome) next.attempts = [...data.attempts, outcome.record];
    if (settlement.outcome === 'dead-letter') {
      await job.updateData({
        ...next,
        lastStatus: outcome?.record.status,
        lastBodyExcerpt: outcome?.bodyExcerpt,
        reason: settlement.reason,
      });
      // To BullMQ's failed set, whatever its own attempts: that is where dead letters are kept.
      throw new UnrecoverableError(settlement.reason);
    }
    if (settlement.outcome === 'retry') {
      next.lastStatus = outcome?.record.status ?? data.lastStatus;
      next.lastBodyExcerpt = outcome?.bodyExcerpt ?? data.lastBodyExcerpt;
      next.reason = settlement.reason;
    }
    next.nextAttemptAt = now + settlement.delayMs;
    await job.updateData(next);
    // Unlike a thrown error, this uses none of BullMQ's attempts.
    await job.moveToDelayed(next.nextAttemptAt, token);
  }

  async status(callId: string): Promise<CallRecord | undefined> {
    // The state first, then the job: the data is then at least as new as the state.
    const state = await this.#queue.getJobState(callId);
    const job = state === 'unknown' ? undefined : await this.#queue.getJob(callId);
    if (job && state !== 'unknown') return toRecord(job, state);
    const tombstone = await this.#client.hgetall(this.#key('cancelled', callId));
    if (tombstone.data === undefined) return undefined;
    return toCallRecord({
      callId,
      data: JSON.parse(tombstone.data) as CallData,
      state: 'cancelled',
      enqueuedAt: Number(tombstone.timestamp),
      updatedAt: Number(tombstone.cancelledAt),
      reason: 'cancelled',
    });
  }

  async cancel(callId: string): Promise<boolean> {
    const result = await this.#client.eval(
      cancelScript,
      6,
      this.#queue.toKey(callId),
      this.#key('cancelled', callId),
      ...['wait', 'paused', 'prioritized', 'delayed'].map((set) => this.#queue.toKey(set)),
      callId,
      this.#retentionMs,
      Date.now(),
    );
    if (result === -1) throw new NotFoundError(`no call ${callId}`);
    if (result !== 1) return false;
    // Out of every set already; BullMQ deletes the rest (a leftover reads as cancelled anyway).
    await this.#queue.remove(callId).catch(() => {});
    return true;
  }

  async deadLetters(filter: DeadLetterFilter = {}): Promise<DeadLetter[]> {
    const jobs = await this.#deadJobs(filter);
    return jobs.map((job) => ({ ...toRecord(job, 'failed'), request: job.data.request }));
  }

  async redrive(filter: DeadLetterFilter = {}): Promise<string[]> {
    const ids: string[] = [];
    for (const job of await this.#deadJobs(filter)) {
      const now = Date.now();
      const { reason: _reason, ...data } = job.data;
      try {
        // The data first: a worker may take the job as soon as it is back in the wait list.
        await job.updateData({
          ...data,
          queuedAt: now,
          priorAttempts: data.attempts.length,
          nextAttemptAt: now,
          updatedAt: now,
        });
        await job.retry('failed');
        ids.push(String(job.id));
      } catch (error) {
        // No longer a dead letter: redriven or purged meanwhile.
        this.#logger.debug({ err: error, callId: job.id }, 'not redriven');
      }
    }
    return ids;
  }

  async purge(filter: DeadLetterFilter = {}): Promise<number> {
    let purged = 0;
    for (const job of await this.#deadJobs(filter)) {
      const id = String(job.id);
      // Out of the failed set first, in one step: a call redriven meanwhile is not deleted.
      if ((await this.#client.zrem(this.#queue.toKey('failed'), id)) === 0) continue;
      await this.#queue.remove(id).catch(() => {});
      purged += 1;
    }
    return purged;
  }

  async bury(buried: BuriedCall): Promise<string> {
    const callId = callIdOf(buried.request) ?? randomUUID();
    const held = await this.#claim(callId, undefined);
    if (!Array.isArray(held)) throw new ConflictError(`call id ${callId} is taken`);
    const now = Date.now();
    const data: CallData = {
      request: buried.request,
      attempts: buried.attempts,
      queuedAt: now,
      priorAttempts: 0,
      updatedAt: now,
      nextAttemptAt: now,
      lastStatus: buried.lastStatus,
      lastBodyExcerpt: buried.lastBodyExcerpt,
      reason: buried.reason,
      settledStarts: 0,
    };
    try {
      // Through BullMQ's own add (the job as BullMQ writes it), delayed beyond reach, then to the
      // failed set at once.
      await this.#queue.add(buried.request.Function, data, {
        jobId: callId,
        timestamp: now,
        delay: buryDelayMs,
        removeOnFail: false,
        stackTraceLimit: 0,
      });
      const moved = await this.#client.eval(
        buryScript,
        3,
        this.#queue.toKey('delayed'),
        this.#queue.toKey('failed'),
        this.#queue.toKey(callId),
        callId,
        buried.reason,
        now,
      );
      if (moved !== 1) throw new Error(`dead letter ${callId} was not stored`);
    } finally {
      void this.#client.del(...held).catch(() => 0);
    }
    return callId;
  }

  async stats(): Promise<Record<string, FunctionQueueStats>> {
    const [wait, paused, prioritized, delayed, active, failed] = [
      'wait',
      'paused',
      'prioritized',
      'delayed',
      'active',
      'failed',
    ].map((set) => this.#queue.toKey(set)) as [string, string, string, string, string, string];
    // One snapshot of every state's ids (MULTI), then each job's function and enqueue time.
    const sets = await execOrThrow(
      this.#client
        .multi()
        .lrange(wait, 0, -1)
        .lrange(paused, 0, -1)
        .zrange(prioritized, '0', '-1')
        .zrange(delayed, '0', '-1')
        .lrange(active, 0, -1)
        .zrange(failed, '0', '-1'),
    );
    const [
      waiting = [],
      pausedIds = [],
      prioritizedIds = [],
      delayedIds = [],
      running = [],
      dead = [],
    ] = sets as string[][];
    const groups: ['queued' | 'running' | 'deadLettered', string[]][] = [
      ['queued', [...waiting, ...pausedIds, ...prioritizedIds, ...delayedIds]],
      ['running', running],
      ['deadLettered', dead],
    ];
    const pipeline = this.#client.pipeline();
    for (const [, ids] of groups) {
      for (const id of ids) pipeline.hmget(this.#queue.toKey(id), 'name', 'timestamp');
    }
    const fields = (await execOrThrow(pipeline)) as [string | null, string | null][];
    const now = Date.now();
    const out: Record<string, FunctionQueueStats> = {};
    let index = 0;
    for (const [column, ids] of groups) {
      for (let i = 0; i < ids.length; i++) {
        const [fn, timestamp] = fields[index++] ?? [null, null];
        if (fn === null) continue; // removed since the snapshot
        const entry = (out[fn] ??= {
          queued: 0,
          running: 0,
          deadLettered: 0,
          oldestQueuedAgeMs: 0,
        });
        entry[column] += 1;
        if (column === 'queued' && timestamp !== null) {
          const age = Math.max(0, now - Number(timestamp));
          entry.oldestQueuedAgeMs = Math.max(entry.oldestQueuedAgeMs, age);
        }
      }
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const consumers = [...this.#consumers];
    for (const consumer of consumers) {
      // Now, so that no worker takes another job meanwhile.
      void consumer.worker.close(true).catch(() => {});
      consumer.stop();
    }
    await Promise.allSettled(consumers.map((consumer) => consumer.done));
    await this.#queue.close().catch(() => {});
    this.#client.disconnect();
  }

  /** The dead letters matching `filter`, oldest first. */
  async #deadJobs(filter: DeadLetterFilter): Promise<CallJob[]> {
    let jobs: CallJob[];
    if (filter.callId !== undefined) {
      const job = await this.#queue.getJob(filter.callId);
      jobs = job && (await job.isFailed()) ? [job] : [];
    } else {
      jobs = await this.#queue.getJobs(['failed'], 0, -1, true);
    }
    return jobs.filter(
      (job) => filter.function === undefined || job.data.request.Function === filter.function,
    );
  }

  /** fnbus's own keys, beside (not among) BullMQ's. */
  #key(kind: string, id: string): string {
    return `fnbus:${this.#name}:${kind}:${id}`;
  }

  #connect(options: { maxRetriesPerRequest?: null; enableAutoPipelining?: boolean }): Redis {
    const client = new Redis(this.#url, options);
    // Reconnects on its own; without a listener ioredis would print every failed try.
    client.on('error', (error: Error) => this.#logger.debug({ err: error }, 'Redis error'));
    return client;
  }
}

/** Redis refusing writes for want of room: `maxmemory` reached, or no disk to persist to. */
const noRoom = /^(OOM|MISCONF)\b/;
/** Redis not taking commands now: loading, a replica, failing over, busy with a script. */
const notNow = /^(LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|BUSY|TRYAGAIN)\b/;
/** Connection errors, as ioredis and the system report them. */
const unreachableCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/**
 * What a failed enqueue means to the caller: Redis out of room is a 507, Redis that cannot be
 * reached (the connection lost mid-call, and ioredis gave up retrying it) or cannot take writes
 * now a 503; anything else stays as it is.
 */
function redisError(error: unknown): unknown {
  if (error instanceof FnbusError || !(error instanceof Error)) return error;
  if (noRoom.test(error.message)) {
    return new InsufficientStorageError('the queue cannot store calls: Redis has no room left', {
      cause: error,
    });
  }
  const code = (error as { code?: unknown }).code;
  if (
    error.name === 'MaxRetriesPerRequestError' ||
    error.message === 'Connection is closed.' ||
    (typeof code === 'string' && unreachableCodes.has(code)) ||
    notNow.test(error.message)
  ) {
    return new UnavailableError('the queue (Redis) cannot be reached', { cause: error });
  }
  return error;
}

/** Where a record's attempts and last answer come from: the job's data, or an acked call. */
type LastAnswer = Pick<CallData, 'attempts' | 'lastStatus' | 'lastBodyExcerpt'>;

interface RecordParts {
  callId: string;
  data: CallData;
  state: CallState;
  enqueuedAt: number;
  updatedAt: number;
  last?: LastAnswer;
  reason?: string;
}

function toCallRecord({
  callId,
  data,
  state,
  enqueuedAt,
  updatedAt,
  last = data,
  reason,
}: RecordParts) {
  const record: CallRecord = {
    callId,
    function: data.request.Function,
    state,
    enqueuedAt: new Date(enqueuedAt).toISOString(),
    updatedAt: new Date(updatedAt).toISOString(),
    attempts: last.attempts,
  };
  if (state === 'queued') record.nextAttemptAt = new Date(data.nextAttemptAt).toISOString();
  if (last.lastStatus !== undefined) record.lastStatus = last.lastStatus;
  if (last.lastBodyExcerpt !== undefined) record.lastBodyExcerpt = last.lastBodyExcerpt;
  if (reason !== undefined) record.reason = reason;
  return record;
}

/** A call's record from its job and BullMQ state. */
function toRecord(job: CallJob, state: JobState): CallRecord {
  const data = job.data;
  const parts = {
    callId: String(job.id),
    data,
    enqueuedAt: job.timestamp,
    updatedAt: Math.max(data.updatedAt, job.processedOn ?? 0, job.finishedOn ?? 0),
  };
  switch (state) {
    case 'active':
      return toCallRecord({ ...parts, state: 'running', reason: data.reason });
    case 'failed':
      return toCallRecord({
        ...parts,
        state: 'dead-lettered',
        reason: data.reason ?? job.failedReason,
      });
    case 'completed': {
      const acked = (job.returnvalue as AckedCall | null) ?? undefined;
      return toCallRecord({ ...parts, state: acked?.state ?? 'succeeded', last: acked });
    }
    default: // waiting, delayed, prioritized
      return toCallRecord({ ...parts, state: 'queued', reason: data.reason });
  }
}

/** A MULTI's or pipeline's replies; the first failed command's error is thrown. */
async function execOrThrow(batch: {
  exec(): Promise<[Error | null, unknown][] | null>;
}): Promise<unknown[]> {
  const replies = (await batch.exec()) ?? [];
  for (const [error] of replies) if (error) throw error;
  return replies.map(([, reply]) => reply);
}
