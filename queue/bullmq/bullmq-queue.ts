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
import {
  deadLetterPageBytes,
  summarizeRequest,
  type AttemptRecord,
  type BuriedCall,
  type CallRecord,
  type CallState,
  type ConsumeOptions,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterPage,
  type DeadLetterQuery,
  type DeadLetterSummary,
  type RequestSummary,
  type DeliveryHandler,
  type Enqueued,
  type EnqueueOptions,
  type FunctionQueueStats,
  type Queue,
  type Settlement,
} from '../../core/queue.js';
import type { QueueRequest } from '../../core/queue-types.js';
import {
  awaitReconnect,
  callIdOf,
  decodeCursor,
  encodeCursor,
  everyDeadLetterPage,
  queueFull,
  redriveStopped,
  requestFingerprint,
  sameRequestOr422,
  scopedIdempotencyKey,
  toSettledState,
} from '../call-records.js';

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
  /** Most calls waiting or running at once; enqueue and redrive refuse more. Default 100,000. */
  maxQueuedCalls?: number;
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
/** How long an enqueue holds its call id between its checks and the job's creation. */
const claimTtlMs = 5 * 60_000;

/**
 * A dead letter's listing, kept in its job's hash beside BullMQ's fields, so that a page reads
 * it and not the job's data (which holds the request's body).
 */
const summaryField = 'fnbus-summary';

interface LetterSummary {
  function: string;
  updatedAt: number;
  attempts: AttemptRecord[];
  lastStatus?: number;
  lastBodyExcerpt?: string;
  reason?: string;
  request: RequestSummary;
}

function letterSummary(data: CallData): LetterSummary {
  return {
    function: data.request.Function,
    updatedAt: data.updatedAt,
    attempts: data.attempts,
    lastStatus: data.lastStatus,
    lastBodyExcerpt: data.lastBodyExcerpt,
    reason: data.reason,
    request: summarizeRequest(data.request),
  };
}

/**
 * Checks an enqueue: returns `{'duplicate', first}` for an Idempotency-Key seen within the window
 * (`first`: the first call's id and request fingerprint, as JSON), `{'full'}` when the calls
 * waiting or running (BullMQ's wait, paused, prioritized, delayed and active sets, each counted in
 * O(1)) are at the cap, `{'taken'}` for a call id in use (a job, a cancelled call, or another
 * enqueue's claim), else claims the id (and the key) and returns `{'ok'}`. One script, so two
 * racing enqueues cannot both pass: BullMQ itself would silently merge a second job with the same
 * id. Run again with the same nonce (ioredis resends a command whose answer a reconnect lost), it
 * answers `ok` again. With ARGV[7] '0' (an id minted here, no key) only the cap is checked.
 * KEYS: wait, paused, prioritized, delayed, active, job hash, cancelled tombstone, claim[,
 * idempotency key]; ARGV: call id, nonce, claim ttl, idempotency window, cap, the key's value,
 * check the id ('1' or '0').
 */
const enqueueScript = `
local checkId = ARGV[7] == '1'
local claim = false
if checkId then
  claim = redis.call('GET', KEYS[8])
  if claim == ARGV[2] then return {'ok'} end
end
if KEYS[9] then
  local first = redis.call('GET', KEYS[9])
  if first then return {'duplicate', first} end
end
local queued = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2])
  + redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) + redis.call('LLEN', KEYS[5])
if queued >= tonumber(ARGV[5]) then return {'full'} end
if checkId then
  if claim or redis.call('EXISTS', KEYS[6], KEYS[7]) > 0 then return {'taken'} end
  redis.call('SET', KEYS[8], ARGV[2], 'PX', ARGV[3])
end
if KEYS[9] then redis.call('SET', KEYS[9], ARGV[6], 'PX', ARGV[4]) end
return {'ok', tostring(queued)}
`;

/**
 * One page of the failed set (the dead letters), in its order (time of failure, then id): the
 * ids of up to `limit` letters of the function asked for (any: ''), reading at most `max scan`
 * entries and, past the first letter, at most `budget` bytes of job data (HSTRLEN, not read).
 * Returns `{ids, lastId, lastScore}` (no last: the end of the set). A page starts after its
 * cursor's id, or, when that id left the set meanwhile, after its score.
 * KEYS: failed; ARGV: after id ('' from the start), after score, function, limit, max scan,
 * job key prefix, budget.
 */
const deadPageScript = `
local start = 0
if ARGV[1] ~= '' then
  local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
  if rank then start = rank + 1 else start = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[2]) end
end
local limit, maxScan, budget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])
local ids, bytes, scanned, pos = {}, 0, 0, start
local lastId, lastScore = '', ''
while true do
  local batch = redis.call('ZRANGE', KEYS[1], pos, pos + 99, 'WITHSCORES')
  if #batch == 0 then return {ids, '', ''} end
  for i = 1, #batch, 2 do
    local id = batch[i]
    local key = ARGV[6] .. id
    if ARGV[3] == '' or redis.call('HGET', key, 'name') == ARGV[3] then
      local size = redis.call('HSTRLEN', key, '${summaryField}')
      if size == 0 then size = redis.call('HSTRLEN', key, 'data') end
      if #ids > 0 and bytes + size > budget then return {ids, lastId, lastScore} end
      ids[#ids + 1] = id
      bytes = bytes + size
    end
    lastId, lastScore = id, batch[i + 1]
    scanned = scanned + 1
    if #ids >= limit or scanned >= maxScan then
      if pos + (i + 1) / 2 < redis.call('ZCARD', KEYS[1]) then return {ids, lastId, lastScore} end
      return {ids, '', ''}
    end
  end
  pos = pos + 100
end
`;

/**
 * Per function: calls queued, running and dead-lettered, and the oldest queued call's enqueue
 * time, counted in Redis a hundred ids at a time: the hub receives one row per function, not one
 * per call. KEYS: wait, paused, prioritized, delayed, active, failed; ARGV: job key prefix.
 * Returns a flat list: function, queued, running, dead-lettered, oldest timestamp (0: none).
 */
const statsScript = `
local out, order = {}, {}
local function count(key, isList, column)
  local pos = 0
  while true do
    local ids
    if isList then ids = redis.call('LRANGE', key, pos, pos + 99)
    else ids = redis.call('ZRANGE', key, pos, pos + 99) end
    if #ids == 0 then return end
    for _, id in ipairs(ids) do
      local job = redis.call('HMGET', ARGV[1] .. id, 'name', 'timestamp')
      local fn = job[1]
      if fn then
        local entry = out[fn]
        if not entry then
          entry = {0, 0, 0, 0}
          out[fn] = entry
          order[#order + 1] = fn
        end
        entry[column] = entry[column] + 1
        if column == 1 and job[2] then
          local at = tonumber(job[2])
          if entry[4] == 0 or at < entry[4] then entry[4] = at end
        end
      end
    end
    pos = pos + 100
  end
end
count(KEYS[1], true, 1)
count(KEYS[2], true, 1)
count(KEYS[3], false, 1)
count(KEYS[4], false, 1)
count(KEYS[5], true, 2)
count(KEYS[6], false, 3)
local flat = {}
for _, fn in ipairs(order) do
  local e = out[fn]
  flat[#flat + 1] = fn
  flat[#flat + 1] = e[1]
  flat[#flat + 1] = e[2]
  flat[#flat + 1] = e[3]
  flat[#flat + 1] = tostring(e[4])
end
return flat
`;

/** Where a dead-letter page ended: the last letter's id and its score in the failed set. */
type BullmqCursor = [string, string];
const isBullmqCursor = (value: unknown): value is BullmqCursor =>
  Array.isArray(value) && value.length === 2 && value.every((part) => typeof part === 'string');

/** Most entries of the failed set one page reads, letters of other functions included. */
const maxScanned = 5000;

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
  readonly #maxQueuedCalls: number;
  /** The calls waiting or running when the cap was last checked, and this queue's enqueues since. */
  #room = { at: 0, queued: 0, since: 0 };
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
    this.#maxQueuedCalls = options.maxQueuedCalls ?? 100_000;
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

  /** Resolves once the connection is up; ioredis alone would hold a call a minute and more. */
  async #reachable(): Promise<void> {
    const client = this.#client;
    if (client.status === 'ready') return;
    await awaitReconnect('Redis', (up) => {
      client.once('ready', up);
      return () => client.off('ready', up);
    });
  }

  async #enqueue(req: QueueRequest, options: EnqueueOptions): Promise<Enqueued> {
    const callId = callIdOf(req) ?? randomUUID();
    // BullMQ refuses these as job ids; the gateway's own ids are UUIDs.
    if (String(parseInt(callId, 10)) === callId || callId.includes(':')) {
      throw new ValidationError(`X-Call-Id "${callId}": this queue takes no integer or ':' ids`);
    }
    const idempotency =
      options.idempotencyKey === undefined
        ? undefined
        : {
            key: scopedIdempotencyKey(req, options.idempotencyKey),
            fingerprint: requestFingerprint(req),
          };
    // A minted id without a key needs no id check: only the cap's, and not even that while the
    // queue was last seen far below it.
    const checkId = !(options.freshCallId && idempotency === undefined);
    const held =
      checkId || !this.#roomKnown() ? await this.#claim(callId, idempotency, { checkId }) : [];
    if (!Array.isArray(held)) return held;
    this.#room.since += 1;
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
   * Checks the cap and claims a call id (and its Idempotency-Key) until the job exists: the
   * claimed keys, to free once done, or the first call's id when the key was seen. Throws when
   * the id is taken, the key was used for another request, or the queue is full.
   */
  async #claim(
    callId: string,
    idempotency: { key: string; fingerprint: string } | undefined,
    { checkId = true, cap = this.#maxQueuedCalls }: { checkId?: boolean; cap?: number } = {},
  ): Promise<string[] | Enqueued> {
    const counted = ['wait', 'paused', 'prioritized', 'delayed', 'active'].map((set) =>
      this.#queue.toKey(set),
    );
    const keys = [...counted, this.#queue.toKey(callId), this.#key('cancelled', callId)];
    const claim = this.#key('claim', callId);
    const held =
      idempotency === undefined ? [claim] : [claim, this.#key('idempotency', idempotency.key)];
    const [verdict, first] = (await this.#client.eval(
      enqueueScript,
      keys.length + held.length,
      ...keys,
      ...held,
      callId,
      randomUUID(),
      claimTtlMs,
      this.#idempotencyWindowMs,
      cap,
      JSON.stringify({ callId, fingerprint: idempotency?.fingerprint }),
      checkId ? '1' : '0',
    )) as [string, string?];
    if (verdict === 'duplicate' && first !== undefined && idempotency !== undefined) {
      return sameRequestOr422(
        JSON.parse(first) as { callId: string; fingerprint: string },
        idempotency.fingerprint,
      );
    }
    if (verdict === 'taken') {
      throw new ConflictError(`call id ${callId} is taken: send another X-Call-Id`);
    }
    if (verdict === 'full') throw queueFull(this.#maxQueuedCalls);
    if (verdict === 'ok' && first !== undefined) {
      this.#room = { at: Date.now(), queued: Number(first), since: 0 };
    }
    return checkId ? held : [];
  }

  /**
   * Whether an enqueue may skip the cap's check: the count seen less than a second ago, plus
   * this queue's enqueues since, is under half the cap. Other gateways' enqueues in that second
   * are not seen: the cap may be passed by at most what they add beyond half of it in a second.
   */
  #roomKnown(): boolean {
    const room = this.#room;
    return Date.now() - room.at < 1000 && room.queued + room.since < this.#maxQueuedCalls / 2;
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
      const dead: CallData = {
        ...next,
        lastStatus: outcome?.record.status,
        lastBodyExcerpt: outcome?.bodyExcerpt,
        reason: settlement.reason,
      };
      await job.updateData(dead);
      await this.#client.hset(
        this.#queue.toKey(String(job.id)),
        summaryField,
        JSON.stringify(letterSummary(dead)),
      );
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

  /**
   * The page's ids from the failed set (a script: bounded scan, byte budget), then each letter's
   * fields in one pipeline: at most the budget of job data is read into this process.
   */
  async deadLetters(query: DeadLetterQuery): Promise<DeadLetterPage> {
    const { items: ids, next } = await this.#deadPage(query, deadLetterPageBytes);
    const pipeline = this.#client.pipeline();
    for (const id of ids) {
      pipeline.hmget(
        this.#queue.toKey(id),
        summaryField,
        'timestamp',
        'processedOn',
        'finishedOn',
        'failedReason',
      );
    }
    const rows = (await execOrThrow(pipeline)) as (string | null)[][];
    const items: DeadLetterSummary[] = [];
    for (const [i, callId] of ids.entries()) {
      const [kept, timestamp, processedOn, finishedOn, failedReason] = rows[i] ?? [];
      // A letter an older fnbus kept has no summary: made from its data, read for it alone.
      const summary = kept
        ? (JSON.parse(kept) as LetterSummary)
        : await this.#client
            .hget(this.#queue.toKey(callId), 'data')
            .then((data) => data && letterSummary(JSON.parse(data) as CallData));
      if (!summary) continue; // removed since the page was read
      const record: DeadLetterSummary = {
        callId,
        function: summary.function,
        state: 'dead-lettered',
        enqueuedAt: new Date(Number(timestamp)).toISOString(),
        updatedAt: new Date(
          Math.max(summary.updatedAt, Number(processedOn ?? 0), Number(finishedOn ?? 0)),
        ).toISOString(),
        attempts: summary.attempts,
        request: summary.request,
      };
      if (summary.lastStatus !== undefined) record.lastStatus = summary.lastStatus;
      if (summary.lastBodyExcerpt !== undefined) record.lastBodyExcerpt = summary.lastBodyExcerpt;
      const reason = summary.reason ?? failedReason ?? undefined;
      if (reason !== undefined) record.reason = reason;
      items.push(record);
    }
    return next === undefined ? { items } : { items, next };
  }

  async deadLetter(callId: string): Promise<DeadLetter | undefined> {
    const job = await this.#deadJob(callId);
    return job && { ...toRecord(job, 'failed'), request: job.data.request };
  }

  /** One page's ids; `next` while the failed set goes on. */
  async #deadPage(
    query: DeadLetterQuery,
    budget: number,
  ): Promise<{ items: string[]; next?: string }> {
    const [afterId, afterScore] = query.cursor
      ? decodeCursor(query.cursor, isBullmqCursor)
      : ['', ''];
    const [ids, lastId, lastScore] = (await this.#client.eval(
      deadPageScript,
      1,
      this.#queue.toKey('failed'),
      afterId,
      afterScore,
      query.function ?? '',
      query.limit,
      maxScanned,
      this.#queue.toKey(''),
      budget,
    )) as [string[], string, string];
    return lastId === '' ? { items: ids } : { items: ids, next: encodeCursor([lastId, lastScore]) };
  }

  /** The ids of the matching dead letters, a page at a time, until none is left. */
  async *#deadBatches(filter: DeadLetterFilter): AsyncGenerator<string[]> {
    if (filter.callId !== undefined) {
      const job = await this.#deadJob(filter.callId, filter.function);
      yield job ? [String(job.id)] : [];
      return;
    }
    yield* everyDeadLetterPage(filter.function, (query) =>
      this.#deadPage(query, Number.MAX_SAFE_INTEGER),
    );
  }

  async redrive(filter: DeadLetterFilter = {}): Promise<string[]> {
    const ids: string[] = [];
    for await (const batch of this.#deadBatches(filter)) {
      for (const id of batch) {
        // One job's data at a time (the request is replayed from it).
        const job = await this.#queue.getJob(id);
        if (job) await this.#redriveOne(job, ids);
      }
    }
    return ids;
  }

  /** One letter back to the wait list, if the cap has room: checked before each. */
  async #redriveOne(job: CallJob, ids: string[]): Promise<void> {
    try {
      await this.#claim(String(job.id), undefined, { checkId: false });
    } catch (error) {
      throw redriveStopped(error, ids.length);
    }
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

  async purge(filter: DeadLetterFilter = {}): Promise<number> {
    let purged = 0;
    for await (const batch of this.#deadBatches(filter)) {
      for (const id of batch) {
        // Out of the failed set first, in one step: a call redriven meanwhile is not deleted.
        if ((await this.#client.zrem(this.#queue.toKey('failed'), id)) === 0) continue;
        await this.#queue.remove(id).catch(() => {});
        purged += 1;
      }
    }
    return purged;
  }

  async bury(buried: BuriedCall): Promise<string> {
    const callId = callIdOf(buried.request) ?? randomUUID();
    // A dead letter is not a call waiting: the cap does not apply.
    const held = await this.#claim(callId, undefined, { cap: Number.MAX_SAFE_INTEGER });
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
      await this.#client.hset(
        this.#queue.toKey(callId),
        summaryField,
        JSON.stringify(letterSummary(data)),
      );
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

  /** Counted by a script in Redis: the hub gets one row per function, whatever the backlog. */
  async stats(): Promise<Record<string, FunctionQueueStats>> {
    const keys = ['wait', 'paused', 'prioritized', 'delayed', 'active', 'failed'].map((set) =>
      this.#queue.toKey(set),
    );
    const flat = (await this.#client.eval(
      statsScript,
      keys.length,
      ...keys,
      this.#queue.toKey(''),
    )) as (string | number)[];
    const now = Date.now();
    // No prototype: `constructor` is a valid function name.
    const out = Object.create(null) as Record<string, FunctionQueueStats>;
    for (let i = 0; i + 4 < flat.length; i += 5) {
      const oldest = Number(flat[i + 4]);
      out[String(flat[i])] = {
        queued: Number(flat[i + 1]),
        running: Number(flat[i + 2]),
        deadLettered: Number(flat[i + 3]),
        oldestQueuedAgeMs: oldest > 0 ? Math.max(0, now - oldest) : 0,
      };
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

  /** The dead letter a call id names, if it is one (of `fn`, when given). */
  async #deadJob(callId: string, fn?: string): Promise<CallJob | undefined> {
    const job = await this.#queue.getJob(callId);
    if (!job || !(await job.isFailed())) return undefined;
    return fn === undefined || job.data.request.Function === fn ? job : undefined;
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
