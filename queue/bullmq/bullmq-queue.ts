import { randomUUID } from 'node:crypto';
import {
  Queue as BullQueue,
  DelayedError,
  UnrecoverableError,
  Worker,
  type Job,
  type JobState,
} from 'bullmq';
import { Redis, type ChainableCommander } from 'ioredis';
import { newCallId } from '../../core/call-id.js';
import {
  ConflictError,
  FnbusError,
  InsufficientStorageError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import * as seam from '../../core/queue.js';
import type { QueueRequest } from '../../core/queue-types.js';
import * as records from '../call-records.js';
import { CommandBatch, type BatchedWrite } from './command-batch.js';

export interface BullmqQueueOptions extends records.QueueOptions {
  /** `redis://host:port[/db]`. */
  url: string;
  /** The BullMQ queue name; default `fnbus-async`. */
  name?: string;
}

/**
 * A call's request and progress, as a job's data holds them once the call was settled (retried,
 * deferred) or redriven; its `state` is BullMQ's: the job's state decides.
 */
interface CallData extends records.CallProgress {
  request: QueueRequest;
  /**
   * BullMQ's count of deliveries started (`attemptsStarted`) when the last one was settled: a
   * delivery that finds more than one start since was preceded by one never settled.
   */
  settledStarts: number;
}

/** What a completed job returns: an acknowledged call's outcome, stored with its completion. */
interface AckedCall {
  state: 'succeeded' | 'failed';
  attempts: seam.AttemptRecord[];
  lastStatus?: number;
  lastBodyExcerpt?: string;
}

/**
 * A call as accepted, never settled yet: the request alone, its progress `queuedCall` at the
 * job's timestamp (less for every enqueue and delivery to encode, store and decode).
 */
interface AcceptedCall {
  request: QueueRequest;
}

/** What a job's data holds. */
type JobData = CallData | AcceptedCall;

type CallJob = Job<JobData, AckedCall>;

/**
 * A job's call, its progress included. Data without attempts is a call as accepted (or one an
 * older fnbus worker, which cannot read it, deferred: it runs now, marked redelivered).
 */
function callOf(job: CallJob): CallData {
  const data = job.data;
  if ('attempts' in data) return data;
  return { request: data.request, ...records.queuedCall(job.timestamp), settledStarts: 0 };
}

interface Consumer {
  worker: Worker<JobData, AckedCall>;
  stop: () => void;
  done: Promise<void>;
}

/** How long an enqueue holds its call id between its checks and the job's creation. */
const claimTtlMs = 5 * 60_000;

/**
 * Checks an enqueue, over fnbus's own keys only: returns `{'duplicate', first}` for an
 * Idempotency-Key seen within the window (`first`: the first call's id and request fingerprint,
 * as JSON), `{'full'}` when the calls waiting or running (the per-function `live` sets, one ZCARD
 * a function) are at the cap, `{'taken'}` for a call id another enqueue claims, else claims the
 * id (and the key) and returns `{'ok', live}`. One script, so two racing enqueues cannot both
 * pass. Run again with the same nonce (ioredis resends a command whose answer a reconnect lost),
 * it answers `ok` again. With ARGV[6] '0' (an id minted here, no key) only the cap is checked.
 * KEYS: claim[, idempotency key]; ARGV: nonce, claim ttl, idempotency window, cap, the key's
 * value, check the id ('1' or '0'), live set prefix, functions set.
 */
const claimScript = `
local checkId = ARGV[6] == '1'
local claim = false
if checkId then
  claim = redis.call('GET', KEYS[1])
  if claim == ARGV[1] then return {'ok'} end
end
if KEYS[2] then
  local first = redis.call('GET', KEYS[2])
  if first then return {'duplicate', first} end
end
local live = 0
for _, fn in ipairs(redis.call('SMEMBERS', ARGV[8])) do
  live = live + redis.call('ZCARD', ARGV[7] .. fn)
end
if live >= tonumber(ARGV[4]) then return {'full'} end
if checkId then
  if claim then return {'taken'} end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[3]) end
return {'ok', tostring(live)}
`;

/**
 * One page of a letters set (all letters, or one function's), oldest first: up to `limit` ids
 * and their summaries, reading (past the first) at most `budget` bytes of summaries. Returns
 * `{idsAndSummaries, lastId, lastScore}` (no last: the end of the set). A page starts after its
 * cursor's id, or, when that id left the set meanwhile, after its score.
 * KEYS: letters set; ARGV: after id ('' from the start), after score, limit, letter hash prefix,
 * budget.
 */
const deadPageScript = `
local start = 0
if ARGV[1] ~= '' then
  local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
  if rank then start = rank + 1 else start = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[2]) end
end
local limit, budget = tonumber(ARGV[3]), tonumber(ARGV[5])
local batch = redis.call('ZRANGE', KEYS[1], start, start + limit - 1, 'WITHSCORES')
local out, bytes, read = {}, 0, 0
local lastId, lastScore = '', ''
for i = 1, #batch, 2 do
  local summary = redis.call('HGET', ARGV[4] .. batch[i], 'summary')
  if summary then
    if read > 0 and bytes + #summary > budget then return {out, lastId, lastScore} end
    bytes = bytes + #summary
    read = read + 1
    out[#out + 1] = batch[i]
    out[#out + 1] = summary
  end
  lastId, lastScore = batch[i], batch[i + 1]
end
if start + #batch / 2 < redis.call('ZCARD', KEYS[1]) then return {out, lastId, lastScore} end
return {out, '', ''}
`;

/**
 * Per function: live (queued or running) and dead-lettered calls and the oldest live call's
 * enqueue time, from fnbus's tallies (ZCARD, and the live set's first entry), and the calls
 * running, summed from the workers' reports that have not expired: O(functions + workers),
 * whatever the backlog. Reports older than their lifetime leave the workers set.
 * KEYS: functions, workers; ARGV: live and letters-of prefixes, report prefix, now, report
 * lifetime. Returns a flat list: function, live, running, dead-lettered, oldest timestamp (0:
 * none).
 */
const statsScript = `
local running = {}
local since = tonumber(ARGV[4]) - tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. since)
for _, worker in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local report = redis.call('HGETALL', ARGV[3] .. worker)
  for i = 1, #report, 2 do
    running[report[i]] = (running[report[i]] or 0) + tonumber(report[i + 1])
  end
end
local flat = {}
for _, fn in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local liveKey = ARGV[1] .. fn
  local live, dead = redis.call('ZCARD', liveKey), redis.call('ZCARD', ARGV[2] .. fn)
  local oldest = '0'
  if live > 0 then oldest = redis.call('ZRANGE', liveKey, 0, 0, 'WITHSCORES')[2] end
  flat[#flat + 1] = fn
  flat[#flat + 1] = live
  flat[#flat + 1] = running[fn] or 0
  flat[#flat + 1] = dead
  flat[#flat + 1] = oldest
end
return flat
`;

/** How often a consuming queue reports its calls running, and how long a report counts. */
const reportEveryMs = 1000;
const reportLifetimeMs = 3 * reportEveryMs;
/** How long a queue trusts that a function is in the functions set without adding it again. */
const functionsKnownMs = 60_000;
/**
 * How often a consuming queue looks for live tallies left behind, and how old one must be: past
 * the claim's life, no enqueue of it can still be under way.
 */
const sweepEveryMs = 60_000;
const staleTallyMs = claimTtlMs;
/** Live entries a sweep checks per function: a backlog's oldest calls are checked, not all. */
const sweepBatch = 100;

/** Where a dead-letter page ended: the last letter's id and its score in the letters set. */
type BullmqCursor = [string, string];
const isBullmqCursor = (value: unknown): value is BullmqCursor =>
  Array.isArray(value) && value.length === 2 && value.every((part) => typeof part === 'string');

/** The BullMQ states of a job that waits to run. */
const waitingStates = new Set<string>(['waiting', 'delayed', 'prioritized', 'paused']);

/**
 * The async queue on Redis, through BullMQ's public API: one job per call waiting or running,
 * its id the call id, its data the request and the call's progress. BullMQ's states are the
 * call's: waiting/delayed are `queued`, active is `running`, completed jobs are acknowledged calls
 * (their return value says `succeeded` or `failed`). `retry` and `defer` move the job to delayed
 * without using BullMQ's own attempts; a killed worker's jobs come back through BullMQ's
 * stalled-job check, marked `redelivered`.
 *
 * fnbus's own data is under its own keys (`fnbus:<name>:…`), never inside BullMQ's: the claims
 * and Idempotency-Keys, cancelled calls' tombstones, the dead letters (a hash each, with ordered
 * sets of all letters and of each function's; a dead-lettered job is failed and removed by
 * BullMQ), and the tallies the cap and stats read: per function the ids of calls queued or
 * running (`live`, scored by enqueue time: one ZADD at enqueue, one ZREM at settlement), and per
 * consuming queue a report of its calls running, rewritten every second. Any number of gateways
 * and workers
 * may share one Redis and queue name.
 */
export class BullmqQueue implements seam.Queue {
  readonly #url: string;
  readonly #name: string;
  readonly #settings: ReturnType<typeof records.queueSettings>;
  /** The calls waiting or running when the cap was last checked, and this queue's enqueues since. */
  #room = { at: 0, queued: 0, since: 0 };
  readonly #logger: Logger;
  /** For enqueue, status and the dead-letter tools: a command waits ~10 s for Redis, then fails. */
  readonly #client: Redis;
  readonly #queue: BullQueue<JobData, AckedCall>;
  /** The enqueues' tally writes, a command per turn, on the queue's connection (see #track). */
  readonly #tally: CommandBatch;
  readonly #consumers = new Set<Consumer>();
  #closed = false;
  /** This queue's deliveries in their handlers, per function: what its reports say. */
  readonly #running = new Map<string, number>();
  readonly #workerId = randomUUID();
  #reporter: NodeJS.Timeout | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #sweeping = false;
  /** Functions this queue added to the functions set lately (see functionsKnownMs). */
  #knownFunctions = { at: 0, names: new Set<string>() };

  constructor(options: BullmqQueueOptions) {
    this.#url = options.url;
    this.#name = options.name ?? 'fnbus-async';
    this.#settings = records.queueSettings(options);
    this.#logger = (options.logger ?? silentLogger).child({ queue: this.#name });
    this.#client = this.#connect({});
    this.#tally = new CommandBatch(this.#client);
    this.#queue = new BullQueue<JobData, AckedCall>(this.#name, { connection: this.#client });
    this.#queue.on('error', (error) => this.#logger.warn({ err: error }, 'BullMQ queue error'));
  }

  async enqueue(req: QueueRequest, options: seam.EnqueueOptions = {}): Promise<seam.Enqueued> {
    try {
      if (this.#client.status !== 'ready') await this.#reachable();
      return await this.#enqueue(req, options);
    } catch (error) {
      throw redisError(error);
    }
  }

  /** Resolves once the connection is up; ioredis alone would hold a call a minute and more. */
  async #reachable(): Promise<void> {
    const client = this.#client;
    if (client.status === 'ready') return;
    await records.awaitReconnect('Redis', (up) => {
      client.once('ready', up);
      return () => client.off('ready', up);
    });
  }

  async #enqueue(req: QueueRequest, options: seam.EnqueueOptions): Promise<seam.Enqueued> {
    const callId = records.callIdOf(req) ?? newCallId();
    // BullMQ refuses these as job ids; the gateway's own ids are UUIDs.
    if (String(parseInt(callId, 10)) === callId || callId.includes(':')) {
      throw new ValidationError(`X-Call-Id "${callId}": this queue takes no integer or ':' ids`);
    }
    const idempotency =
      options.idempotencyKey === undefined
        ? undefined
        : {
            key: records.scopedIdempotencyKey(req, options.idempotencyKey),
            fingerprint: records.requestFingerprint(req),
          };
    // A minted id without a key needs no id check: only the cap's, and not even that while the
    // queue was last seen far below it.
    const checkId = !(options.freshCallId && idempotency === undefined);
    const held =
      checkId || !this.#roomKnown() ? await this.#claim(callId, idempotency, { checkId }) : [];
    if (!Array.isArray(held)) return held;
    this.#room.since += 1;
    const now = Date.now();
    const tally = this.#track(req.Function, callId, now);
    try {
      // The tally first, on the same connection: it is in Redis before any worker can take the
      // job and settle it.
      await tally.sent;
      await Promise.all([tally.stored, this.#add(callId, { request: req }, now)]);
    } catch (error) {
      // Not queued: free the id and the key for the caller's next try (and name the function
      // again next time: the tally's write may be what failed).
      this.#knownFunctions.names.delete(req.Function);
      await this.#untracked(this.#client.multi(), req.Function, callId)
        .del(...(held.length > 0 ? held : [this.#key('claim', callId)]))
        .exec()
        .catch(() => null);
      throw error;
    }
    // The job holds the id from now on; the claim would expire anyway, so the caller need not
    // wait for its removal.
    if (held[0] !== undefined) void this.#client.del(held[0]).catch(() => 0);
    return { callId, duplicate: false };
  }

  /**
   * A call's job, as BullMQ adds it. Its options are the id and time alone: how long a finished
   * job stays is the workers' (see consume), not written into every job.
   */
  #add(callId: string, data: JobData, timestamp: number): Promise<CallJob> {
    return this.#queue.add(data.request.Function, data, { jobId: callId, timestamp });
  }

  /**
   * Counts a call live (queued or running) in its function's tally; names the function in the
   * functions set unless this queue did so lately (nothing removes a name from it).
   */
  #tracked(batch: ChainableCommander, fn: string, callId: string, at: number, nx = false) {
    if (this.#naming(fn)) batch.sadd(this.#key('functions'), fn);
    return nx
      ? batch.zadd(this.#key('live', fn), 'NX', at, callId)
      : batch.zadd(this.#key('live', fn), at, callId);
  }

  /**
   * `#tracked` for the hot path: plain commands, each turn's enqueues' in one ZADD per function
   * (`CommandBatch`). No MULTI, for ioredis copies every script BullMQ defined on the connection into
   * each MULTI it makes (most of an enqueue's client CPU). The writes need no atomicity: each is
   * idempotent, and a failed enqueue undoes both. Once `sent`, a job added on the connection
   * reaches Redis after them.
   */
  #track(fn: string, callId: string, at: number): BatchedWrite {
    const live = this.#tally.write('zadd', this.#key('live', fn), at, callId);
    if (!this.#naming(fn)) return live;
    const named = this.#tally.write('sadd', this.#key('functions'), fn);
    return { sent: live.sent, stored: Promise.all([named.stored, live.stored]) };
  }

  /** Whether a call of `fn` should name it in the functions set (not done lately by this queue). */
  #naming(fn: string): boolean {
    if (Date.now() - this.#knownFunctions.at > functionsKnownMs) {
      this.#knownFunctions = { at: Date.now(), names: new Set() };
    }
    if (this.#knownFunctions.names.has(fn)) return false;
    this.#knownFunctions.names.add(fn);
    return true;
  }

  /** Counts a call out of its function's live tally. */
  #untracked(batch: ChainableCommander, fn: string, callId: string) {
    return batch.zrem(this.#key('live', fn), callId);
  }

  /**
   * While consuming, reports this queue's calls running per function every `reportEveryMs`, in
   * a hash of its own that expires: a running call costs no write of its own.
   */
  #report(): void {
    const report = this.#key('running', this.#workerId);
    const batch = this.#client.multi().del(report);
    if (this.#running.size > 0) batch.hset(report, Object.fromEntries(this.#running));
    void batch
      .pexpire(report, reportLifetimeMs)
      .zadd(this.#key('workers'), Date.now(), this.#workerId)
      .exec()
      .catch(() => null);
  }

  #counted(fn: string, change: 1 | -1): void {
    const n = (this.#running.get(fn) ?? 0) + change;
    if (n > 0) this.#running.set(fn, n);
    else this.#running.delete(fn);
  }

  /**
   * Checks the cap and claims a call id (and its Idempotency-Key) until the job exists: the
   * claimed keys, to free once done, or the first call's id when the key was seen. Throws when
   * the id is taken, the key was used for another request, or the queue is full.
   */
  async #claim(
    callId: string,
    idempotency: { key: string; fingerprint: string } | undefined,
    {
      checkId = true,
      cap = this.#settings.maxQueuedCalls,
    }: { checkId?: boolean; cap?: number } = {},
  ): Promise<string[] | seam.Enqueued> {
    const claim = this.#key('claim', callId);
    const held =
      idempotency === undefined ? [claim] : [claim, this.#key('idempotency', idempotency.key)];
    const [verdict, first] = (await this.#client.eval(
      claimScript,
      held.length,
      ...held,
      randomUUID(),
      claimTtlMs,
      this.#settings.idempotencyWindowMs,
      cap,
      JSON.stringify({ callId, fingerprint: idempotency?.fingerprint }),
      checkId ? '1' : '0',
      this.#key('live', ''),
      this.#key('functions'),
    )) as [string, string?];
    if (verdict === 'duplicate' && first !== undefined && idempotency !== undefined) {
      return records.sameRequestOr422(
        JSON.parse(first) as { callId: string; fingerprint: string },
        idempotency.fingerprint,
      );
    }
    const taken = () => new ConflictError(`call id ${callId} is taken: send another X-Call-Id`);
    if (verdict === 'taken') throw taken();
    if (verdict === 'full') throw records.queueFull(this.#settings.maxQueuedCalls);
    if (verdict === 'ok' && first !== undefined) {
      this.#room = { at: Date.now(), queued: Number(first), since: 0 };
    }
    if (!checkId) return [];
    // Claimed: no other enqueue can add it now; a job, a dead letter or a cancelled call may
    // hold it already.
    if (await this.#idTaken(callId)) {
      await this.#client.del(...held).catch(() => 0);
      throw taken();
    }
    return held;
  }

  /** Whether a job, a dead letter or a cancelled call's tombstone holds the id. */
  async #idTaken(callId: string): Promise<boolean> {
    const [state, kept] = await Promise.all([
      this.#queue.getJobState(callId),
      this.#client.exists(this.#key('letter', callId), this.#key('cancelled', callId)),
    ]);
    return state !== 'unknown' || kept > 0;
  }

  /**
   * Whether an enqueue may skip the cap's check: the count seen less than a second ago, plus
   * this queue's enqueues since, is under half the cap. Other gateways' enqueues in that second
   * are not seen: the cap may be passed by at most what they add beyond half of it in a second.
   */
  #roomKnown(): boolean {
    const room = this.#room;
    return (
      Date.now() - room.at < 1000 && room.queued + room.since < this.#settings.maxQueuedCalls / 2
    );
  }

  async consume(handle: seam.DeliveryHandler, options: seam.ConsumeOptions, signal: AbortSignal) {
    if (this.#closed || signal.aborted) return;
    // A worker's connection retries its commands until Redis is back (BullMQ requires it of the
    // connection it blocks on): a settlement waits out an outage instead of being lost.
    const client = this.#connect({ maxRetriesPerRequest: null });
    // The settlements' tally writes, on the connection BullMQ completes jobs on (see #deliver).
    const tally = new CommandBatch(client, (error, callIds) => this.#tallyLost(error, callIds));
    const leaseMs = this.#settings.leaseMs;
    const worker = new Worker<JobData, AckedCall>(
      this.#name,
      (job, token) => this.#deliver(job, token, handle, client, tally),
      {
        connection: client,
        concurrency: Math.max(1, options.concurrency),
        lockDuration: leaseMs,
        stalledInterval: Math.max(100, Math.floor(leaseMs / 2)),
        // A stalled job is always delivered again, never failed: dead letters are the handler's.
        maxStalledCount: Number.MAX_SAFE_INTEGER,
        // Acknowledged calls answer status() for the retention; a dead letter leaves BullMQ (fnbus
        // keeps it under its own keys). Jobs an older fnbus queued carry the same in their options.
        removeOnComplete: { age: Math.ceil(this.#settings.retentionMs / 1000) },
        removeOnFail: { count: 0 },
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
    this.#reporter ??= setInterval(() => this.#report(), reportEveryMs).unref();
    if (this.#sweeper === undefined) {
      this.#sweeper = setInterval(() => void this.#sweep(), sweepEveryMs).unref();
      void this.#sweep();
    }
    try {
      await done;
    } finally {
      this.#consumers.delete(consumer);
      if (this.#consumers.size === 0) {
        clearInterval(this.#reporter);
        clearInterval(this.#sweeper);
        this.#reporter = undefined;
        this.#sweeper = undefined;
        if (!this.#closed) this.#report();
      }
    }
  }

  async #deliver(
    job: CallJob,
    token: string | undefined,
    handle: seam.DeliveryHandler,
    client: Redis,
    tally: CommandBatch,
  ) {
    const data = callOf(job);
    const callId = String(job.id);
    const fn = data.request.Function;
    const redelivered = job.attemptsStarted > data.settledStarts + 1;
    if (redelivered) {
      // Live again, should the killed worker's settlement have counted it out; and a worker
      // killed between writing a dead letter and failing the job: the call runs again. On the
      // connection this delivery's settlement goes out on, so that it reaches Redis first.
      const batch = this.#tracked(client.multi(), fn, callId, job.timestamp, true);
      void this.#unlettered(batch, fn, callId)
        .exec()
        .catch((error: unknown) => this.#tallyLost(error, callId));
    }
    this.#counted(fn, 1);
    let settlement: seam.Settlement;
    try {
      settlement = await records.settlementOf(
        handle,
        data.request,
        records.deliveryOf(callId, data, redelivered),
      );
    } finally {
      this.#counted(fn, -1);
    }
    // Closed under it: the delivery is abandoned, as by a kill. A DelayedError makes BullMQ leave
    // the job as it is.
    if (this.#closed) throw new DelayedError();
    const now = Date.now();
    const settled = records.settledCall(records.claimedCall(data, now), settlement, now);
    try {
      if (settled.state === 'succeeded' || settled.state === 'failed') {
        // Sent before BullMQ completes the job, on the same connection: it reaches Redis first (a
        // worker killed in between has the call delivered again, counted live again). Its reply
        // is not waited for: lost only to a Redis error, logged. A plain command, a turn's in one
        // per function: a MULTI costs more client CPU than the call's other commands (#track).
        await tally.write('zrem', this.#key('live', fn), callId).sent;
        return {
          state: settled.state,
          attempts: settled.attempts,
          lastStatus: settled.lastStatus,
          lastBodyExcerpt: settled.lastBodyExcerpt,
        };
      }
      const next: CallData = { ...data, ...settled, settledStarts: job.attemptsStarted };
      if (next.state === 'dead-lettered') {
        await execOrThrow(
          this.#lettered(
            this.#untracked(this.#client.multi(), fn, callId),
            callId,
            job.timestamp,
            next,
          ),
        );
        // BullMQ fails the job and removes it: the letter is fnbus's now.
        throw new UnrecoverableError(next.reason ?? 'dead-lettered');
      }
      // Retry or defer: the record into the job's data, then the job to delayed (which, unlike a
      // thrown error, uses none of BullMQ's attempts).
      await job.updateData(next);
      await job.moveToDelayed(next.nextAttemptAt ?? now, token);
    } catch (error) {
      if (error instanceof UnrecoverableError) throw error;
      // Not written (the lock was lost to the stalled check, or Redis failed): leave the job
      // alone; unless it moved on, its lock runs out and it is delivered again.
      this.#logger.warn({ err: error, callId }, 'settlement not written');
    }
    throw new DelayedError();
  }

  /**
   * Counts out of the live tallies the calls whose job is gone or finished long after they were
   * queued: what a failed enqueue could not undo, or a process killed between a call's tally and
   * its job left behind. Each function's oldest entries are checked, through BullMQ's job state.
   */
  async #sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      const before = Date.now() - staleTallyMs;
      for (const fn of await this.#client.smembers(this.#key('functions'))) {
        const live = this.#key('live', fn);
        const ids = await this.#client.zrangebyscore(live, '-inf', before, 'LIMIT', 0, sweepBatch);
        for (const callId of ids) {
          if (this.#closed) return;
          const state = await this.#queue.getJobState(callId);
          if (state !== 'unknown' && state !== 'completed' && state !== 'failed') continue;
          await this.#client.zrem(live, callId);
          this.#logger.info(
            { callId, function: fn },
            'a call left in the live tally was counted out',
          );
        }
      }
    } catch (error) {
      this.#logger.debug({ err: error }, 'live tallies not swept');
    } finally {
      this.#sweeping = false;
    }
  }

  /** A tally's write failed: stats may count the calls as live until they are next settled. */
  #tallyLost(error: unknown, callIds: string | (string | number)[]): void {
    this.#logger.warn({ err: error, callIds }, 'a tally was not written');
  }

  /** Writes a dead letter: its hash (summary apart from the data that holds the body), indexed. */
  #lettered(batch: ChainableCommander, callId: string, enqueuedAt: number, data: CallData) {
    const fn = data.request.Function;
    const summary: seam.DeadLetterSummary = {
      ...records.callRecordOf(callId, fn, enqueuedAt, data),
      request: seam.summarizeRequest(data.request),
    };
    return batch
      .hset(this.#key('letter', callId), {
        function: fn,
        enqueuedAt,
        summary: JSON.stringify(summary),
        data: JSON.stringify(data),
      })
      .zadd(this.#key('letters'), data.updatedAt, callId)
      .zadd(this.#key('letters-of', fn), data.updatedAt, callId)
      .sadd(this.#key('functions'), fn);
  }

  /** Deletes a dead letter and its index entries. */
  #unlettered(batch: ChainableCommander, fn: string, callId: string) {
    return batch
      .zrem(this.#key('letters'), callId)
      .zrem(this.#key('letters-of', fn), callId)
      .del(this.#key('letter', callId));
  }

  async status(callId: string): Promise<seam.CallRecord | undefined> {
    // The state first, then the job: the data is then at least as new as the state.
    const state = await this.#queue.getJobState(callId);
    const job = state === 'unknown' ? undefined : await this.#queue.getJob(callId);
    if (job && state !== 'unknown') return toRecord(job, state);
    const letter = await this.#letter(callId);
    if (letter) return toLetterRecord(callId, letter);
    const tombstone = await this.#client.hgetall(this.#key('cancelled', callId));
    if (tombstone.data === undefined) return undefined;
    const data = JSON.parse(tombstone.data) as CallData;
    return records.callRecordOf(callId, data.request.Function, Number(tombstone.timestamp), {
      ...data,
      state: 'cancelled',
      updatedAt: Number(tombstone.cancelledAt),
      reason: 'cancelled',
    });
  }

  /**
   * Cancels a waiting call through BullMQ's remove(), which refuses a job a worker holds (locked):
   * its record goes to a tombstone of fnbus's for the retention first. (A job taken and finished
   * between the state's read and the removal, one round trip, would be removed as cancelled.)
   */
  async cancel(callId: string): Promise<boolean> {
    const state = await this.#queue.getJobState(callId);
    if (state === 'unknown') {
      if (await this.#client.exists(this.#key('letter', callId), this.#key('cancelled', callId))) {
        return false;
      }
      throw new NotFoundError(`no call ${callId}`);
    }
    if (!waitingStates.has(state)) return false;
    const job = await this.#queue.getJob(callId);
    if (!job) return false;
    const tombstone = this.#key('cancelled', callId);
    await execOrThrow(
      this.#client
        .multi()
        .hset(tombstone, {
          data: JSON.stringify(callOf(job)),
          timestamp: job.timestamp,
          cancelledAt: Date.now(),
        })
        .pexpire(tombstone, this.#settings.retentionMs),
    );
    try {
      await job.remove();
    } catch (error) {
      // A worker took it meanwhile: it runs.
      this.#logger.debug({ err: error, callId }, 'not cancelled');
      await this.#client.del(tombstone);
      return false;
    }
    await execOrThrow(this.#untracked(this.#client.multi(), job.data.request.Function, callId));
    return true;
  }

  /** A page's ids and summaries in one script (bounded by the page's limit and byte budget). */
  async deadLetters(query: seam.DeadLetterQuery): Promise<seam.DeadLetterPage> {
    const { items, next } = await this.#deadPage(query, seam.deadLetterPageBytes);
    return next === undefined ? { items } : { items, next };
  }

  async deadLetter(callId: string): Promise<seam.DeadLetter | undefined> {
    const letter = await this.#letter(callId);
    return letter && { ...toLetterRecord(callId, letter), request: letter.data.request };
  }

  /** A dead letter's hash, whole; undefined when there is none. */
  async #letter(callId: string): Promise<{ data: CallData; enqueuedAt: number } | undefined> {
    const [data, enqueuedAt] = await this.#client.hmget(
      this.#key('letter', callId),
      'data',
      'enqueuedAt',
    );
    if (!data) return undefined;
    return { data: JSON.parse(data) as CallData, enqueuedAt: Number(enqueuedAt) };
  }

  /** One page of letters; `next` while the letters set goes on. */
  async #deadPage(
    query: seam.DeadLetterQuery,
    budget: number,
  ): Promise<{ items: seam.DeadLetterSummary[]; next?: string }> {
    const [afterId, afterScore] = query.cursor
      ? records.decodeCursor(query.cursor, isBullmqCursor)
      : ['', ''];
    const letters =
      query.function === undefined ? this.#key('letters') : this.#key('letters-of', query.function);
    const [flat, lastId, lastScore] = (await this.#client.eval(
      deadPageScript,
      1,
      letters,
      afterId,
      afterScore,
      query.limit,
      this.#key('letter', ''),
      budget,
    )) as [string[], string, string];
    const items: seam.DeadLetterSummary[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      items.push(JSON.parse(flat[i + 1] as string) as seam.DeadLetterSummary);
    }
    return lastId === '' ? { items } : { items, next: records.encodeCursor([lastId, lastScore]) };
  }

  /** The matching dead letters, a page at a time, until none is left. */
  async *#deadBatches(filter: seam.DeadLetterFilter): AsyncGenerator<seam.DeadLetterSummary[]> {
    if (filter.callId !== undefined) {
      const letter = await this.#letter(filter.callId);
      const fn = letter?.data.request.Function;
      const matches = letter && (filter.function === undefined || fn === filter.function);
      yield matches
        ? [
            {
              ...toLetterRecord(filter.callId, letter),
              request: seam.summarizeRequest(letter.data.request),
            },
          ]
        : [];
      return;
    }
    yield* records.everyDeadLetterPage(filter.function, (query) =>
      this.#deadPage(query, Number.MAX_SAFE_INTEGER),
    );
  }

  async redrive(filter: seam.DeadLetterFilter = {}): Promise<string[]> {
    const ids: string[] = [];
    for await (const batch of this.#deadBatches(filter)) {
      for (const letter of batch) await this.#redriveOne(letter.callId, ids);
    }
    return ids;
  }

  /**
   * One letter back to the queue, if the cap has room (checked before each): out of the letters
   * set first (one redrive wins), then its job, then the rest of the letter.
   */
  async #redriveOne(callId: string, ids: string[]): Promise<void> {
    try {
      await this.#claim(callId, undefined, { checkId: false });
    } catch (error) {
      throw records.redriveStopped(error, ids.length);
    }
    const letter = await this.#letter(callId);
    if (!letter || (await this.#client.zrem(this.#key('letters'), callId)) === 0) return;
    const now = Date.now();
    const fn = letter.data.request.Function;
    const data: CallData = { ...letter.data, ...records.redrivenCall(letter.data, now) };
    try {
      await Promise.all([
        execOrThrow(this.#tracked(this.#client.multi(), fn, callId, now)),
        this.#add(callId, data, now),
      ]);
    } catch (error) {
      // Still a dead letter.
      await this.#untracked(this.#client.multi(), fn, callId)
        .zadd(this.#key('letters'), letter.data.updatedAt, callId)
        .exec()
        .catch(() => null);
      throw records.redriveStopped(error, ids.length);
    }
    await execOrThrow(this.#unlettered(this.#client.multi(), fn, callId));
    ids.push(callId);
  }

  async purge(filter: seam.DeadLetterFilter = {}): Promise<number> {
    let purged = 0;
    for await (const batch of this.#deadBatches(filter)) {
      for (const letter of batch) {
        // Out of the letters set first, in one step: a call redriven meanwhile is not deleted.
        if ((await this.#client.zrem(this.#key('letters'), letter.callId)) === 0) continue;
        await execOrThrow(this.#unlettered(this.#client.multi(), letter.function, letter.callId));
        purged += 1;
      }
    }
    return purged;
  }

  async bury(buried: seam.BuriedCall): Promise<string> {
    const callId = records.callIdOf(buried.request) ?? randomUUID();
    // A dead letter is not a call waiting: the cap does not apply.
    const held = await this.#claim(callId, undefined, { cap: Number.MAX_SAFE_INTEGER });
    if (!Array.isArray(held)) throw new ConflictError(`call id ${callId} is taken`);
    const now = Date.now();
    const data: CallData = {
      request: buried.request,
      ...records.buriedCall(buried, now),
      settledStarts: 0,
    };
    try {
      await execOrThrow(this.#lettered(this.#client.multi(), callId, now, data));
    } finally {
      void this.#client.del(...held).catch(() => 0);
    }
    return callId;
  }

  /** From fnbus's per-function tallies, in one script: O(functions), whatever the backlog. */
  async stats(): Promise<Record<string, seam.FunctionQueueStats>> {
    const flat = (await this.#client.eval(
      statsScript,
      2,
      this.#key('functions'),
      this.#key('workers'),
      this.#key('live', ''),
      this.#key('letters-of', ''),
      this.#key('running', ''),
      Date.now(),
      reportLifetimeMs,
    )) as (string | number)[];
    const tallies: [string, records.FunctionTally][] = [];
    for (let i = 0; i + 4 < flat.length; i += 5) {
      const oldest = Number(flat[i + 4]);
      tallies.push([
        String(flat[i]),
        {
          live: Number(flat[i + 1]),
          running: Number(flat[i + 2]),
          dead: Number(flat[i + 3]),
          ...(oldest > 0 ? { oldestQueuedAt: oldest } : {}),
        },
      ]);
    }
    return records.statsOf(tallies, Date.now());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#reporter);
    clearInterval(this.#sweeper);
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

  /** fnbus's own keys, beside (not among) BullMQ's: `fnbus:<queue>:<kind>[:<id>]`. */
  #key(kind: string, id?: string): string {
    return id === undefined ? `fnbus:${this.#name}:${kind}` : `fnbus:${this.#name}:${kind}:${id}`;
  }

  #connect(options: { maxRetriesPerRequest?: null; enableAutoPipelining?: boolean }): Redis {
    const client = new Redis(this.#url, options);
    // Reconnects on its own; without a listener ioredis would print every failed try.
    client.on('error', (error: Error) => this.#logger.debug({ err: error }, 'Redis error'));
    client.on('connect', () => writeOncePerTurn(client.stream));
    return client;
  }
}

/**
 * Makes a connection's writes of one turn go out together: ioredis writes each command to its
 * socket as it is sent, a system call each, a good part of a call's client CPU (BullMQ's own
 * commands included). The socket is corked at a turn's first write and uncorked once the code
 * and promise callbacks of that moment are done (process.nextTick), in one writev. The order of
 * writes is kept; a reconnection's new socket is corked the same way.
 */
function writeOncePerTurn(stream: Redis['stream']): void {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  const uncork = () => stream.uncork();
  stream.write = (...args: unknown[]) => {
    if (stream.writableCorked === 0) {
      stream.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  };
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

/** A dead letter's record, from its hash. */
function toLetterRecord(
  callId: string,
  letter: { data: CallData; enqueuedAt: number },
): seam.CallRecord {
  const { data } = letter;
  return records.callRecordOf(callId, data.request.Function, letter.enqueuedAt, {
    ...data,
    state: 'dead-lettered',
  });
}

/** A call's record from its job and BullMQ state. */
function toRecord(job: CallJob, state: JobState): seam.CallRecord {
  const data = callOf(job);
  const record = (call: records.CallProgress) =>
    records.callRecordOf(String(job.id), data.request.Function, job.timestamp, {
      ...call,
      updatedAt: Math.max(call.updatedAt, job.processedOn ?? 0, job.finishedOn ?? 0),
    });
  switch (state) {
    case 'active':
      return record({ ...data, state: 'running' });
    case 'failed': // a dead letter an older fnbus left in BullMQ's failed set
      return record({ ...data, state: 'dead-lettered', reason: data.reason ?? job.failedReason });
    case 'completed': {
      const acked = (job.returnvalue as AckedCall | null) ?? undefined;
      return record({
        ...data,
        state: acked?.state ?? 'succeeded',
        attempts: acked?.attempts ?? data.attempts,
        lastStatus: acked?.lastStatus,
        lastBodyExcerpt: acked?.lastBodyExcerpt,
        reason: undefined,
      });
    }
    default: // waiting, delayed, prioritized
      return record({ ...data, state: 'queued' });
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
