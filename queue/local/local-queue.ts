import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { newCallId } from '../../core/call-id.js';
import {
  ConflictError,
  FnbusError,
  InsufficientStorageError,
  NotFoundError,
  UnavailableError,
} from '../../core/errors.js';
import * as seam from '../../core/queue.js';
import type { QueueRequest } from '../../core/queue-types.js';
import * as records from '../call-records.js';

export interface LocalQueueOptions extends records.QueueOptions {
  /** The database file (created with its folder); `:memory:` for a queue that does not last. */
  file: string;
  /**
   * Also look for due calls this often while consuming: for a consumer in another thread or
   * process than the one enqueueing, which no wake-up reaches. Default: only when woken.
   */
  pollMs?: number;
}

interface CallRow {
  call_id: string;
  function: string;
  state: seam.CallState;
  request: string | null;
  enqueued_at: number;
  updated_at: number;
  next_at: number;
  attempts: string;
  redelivered: number;
  queued_at: number;
  prior_attempts: number;
  last_status: number | null;
  last_body: string | null;
  reason: string | null;
}

/** Most calls claimed in one statement when several slots are free. */
const claimBatch = 64;
/** Most dead letters redriven in one statement. */
const redriveBatch = 500;

/** Where a dead-letter page ended: the last letter's update time and rowid. */
type LocalCursor = [number, number];
const isLocalCursor = (value: unknown): value is LocalCursor =>
  Array.isArray(value) && value.length === 2 && value.every((n) => Number.isSafeInteger(n));

/** A dead letter as a page reads it: its record, and its request's summary made in SQL. */
interface LetterRow extends CallRow {
  seq: number;
  summary: string | null;
  method: string | null;
  path: string | null;
  query: string | null;
  body_length: number | null;
  body_tail: string | null;
}

/**
 * How long settlements gather before they are committed together: a write transaction of the
 * worker's connection makes the gateway's connection (another thread) wait for the lock and reload
 * its cache, so fewer and larger ones; a call's slot is taken again a few ms later.
 */
const settleEveryMs = 2;

/**
 * The embedded queue: one SQLite database (WAL) holding every call (its request, state and
 * attempts), the idempotency keys, and the dead letters, which are calls in state
 * `dead-lettered`. A call is written before enqueue() resolves, so an accepted call survives a
 * `kill -9` of the hub; calls that were running when the process died run again after restart
 * (`redelivered`). One process owns the file: this is the queue of a single hub, not of a fleet
 * of workers (use BullMQ or JetStream for that).
 */
export class LocalQueue implements seam.Queue {
  readonly #db: Database.Database;
  readonly #retentionMs: number;
  readonly #idempotencyWindowMs: number;
  readonly #maxQueuedCalls: number;
  readonly #pollMs: number | undefined;
  readonly #statements: ReturnType<typeof prepare>;
  /** Wakes the consume loops: a call was queued, or a slot freed. */
  #wake: (() => void)[] = [];
  readonly #pruner: NodeJS.Timeout;
  #closed = false;
  /** Enqueues and settlements waiting for this turn's group commit. */
  #enqueues: {
    req: QueueRequest;
    key: string | undefined;
    resolve: (enqueued: seam.Enqueued) => void;
    reject: (error: Error) => void;
  }[] = [];
  #settlements: (() => void)[] = [];

  constructor(options: LocalQueueOptions) {
    if (options.file !== ':memory:') mkdirSync(dirname(options.file), { recursive: true });
    this.#db = new Database(options.file);
    // WAL with synchronous=NORMAL: a committed call survives the process being killed (the OS
    // has it); only a power cut could lose the last commits.
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    migrate(this.#db);
    ({
      retentionMs: this.#retentionMs,
      idempotencyWindowMs: this.#idempotencyWindowMs,
      maxQueuedCalls: this.#maxQueuedCalls,
    } = records.queueSettings(options));
    this.#pollMs = options.pollMs;
    this.#statements = prepare(this.#db);
    // Calls running when the last process died: run them again, marked redelivered.
    this.#statements.requeueRunning.run({ now: Date.now() });
    this.#pruner = setInterval(() => this.#prune(), 60_000).unref();
  }

  enqueue(req: QueueRequest, options: seam.EnqueueOptions = {}): Promise<seam.Enqueued> {
    return new Promise((resolve, reject) => {
      this.#enqueues.push({ req, key: options.idempotencyKey, resolve, reject });
      if (this.#enqueues.length === 1) setImmediate(this.#commitEnqueues);
    });
  }

  /**
   * Group commit: the enqueues of one turn of the event loop go in one transaction, each
   * resolved only once it is committed. Under load that is one lock and one WAL write for many
   * calls, where a transaction each would queue on the lock (the worker thread writes too).
   */
  readonly #commitEnqueues = (): void => {
    const batch = this.#enqueues;
    this.#enqueues = [];
    if (this.#closed) {
      for (const item of batch) item.reject(new UnavailableError('the queue is closed'));
      return;
    }
    let results: (seam.Enqueued | Error)[];
    try {
      // IMMEDIATE: the write lock up front, waited for; a read-then-write transaction could
      // otherwise fail at once when another connection (the worker thread) wrote meanwhile.
      results = this.#db
        .transaction(() => {
          // Counted once per batch (a sum over the per-function counters), then kept up here.
          const counted = { queued: this.#queuedNow(), added: new Map<string, number>() };
          const enqueued = batch.map((item) => this.#enqueueOne(item.req, item.key, counted));
          // The batch's calls tallied once per function, not by a trigger per insert.
          for (const [fn, n] of counted.added) {
            this.#statements.tally.run({ function: fn, kind: 'live', n });
          }
          return enqueued;
        })
        .immediate();
    } catch (error) {
      for (const item of batch) item.reject(storeError(error));
      return;
    }
    batch.forEach((item, i) => {
      const result = results[i] as seam.Enqueued | Error;
      if (result instanceof Error) item.reject(result);
      else item.resolve(result);
    });
    this.#notify();
  };

  /** One enqueue inside the batch's transaction; a refusal is returned, not thrown. */
  #enqueueOne(
    req: QueueRequest,
    sentKey: string | undefined,
    counted: { queued: number; added: Map<string, number> },
  ): seam.Enqueued | Error {
    const now = Date.now();
    const idempotency =
      sentKey === undefined
        ? undefined
        : {
            key: records.scopedIdempotencyKey(req, sentKey),
            fingerprint: records.requestFingerprint(req),
          };
    if (idempotency) {
      const { key, fingerprint } = idempotency;
      this.#statements.forgetKey.run(key, now);
      const seen = this.#statements.findKey.get(key) as
        { call_id: string; fingerprint: string | null } | undefined;
      if (seen) {
        try {
          return records.sameRequestOr422(
            { callId: seen.call_id, fingerprint: seen.fingerprint },
            fingerprint,
          );
        } catch (error) {
          return error as Error;
        }
      }
    }
    if (counted.queued >= this.#maxQueuedCalls) return records.queueFull(this.#maxQueuedCalls);
    const callId = records.callIdOf(req) ?? newCallId();
    // A taken id inserts nothing: no read of the row first.
    const { changes } = this.#statements.insert.run({
      call_id: callId,
      function: req.Function,
      request: JSON.stringify(req),
      now,
    });
    if (changes === 0) {
      return new ConflictError(`call id ${callId} is taken: send another X-Call-Id`);
    }
    counted.queued += 1;
    counted.added.set(req.Function, (counted.added.get(req.Function) ?? 0) + 1);
    if (idempotency) {
      const { key, fingerprint } = idempotency;
      this.#statements.rememberKey.run(key, callId, now + this.#idempotencyWindowMs, fingerprint);
    }
    return { callId, duplicate: false };
  }

  async consume(handle: seam.DeliveryHandler, options: seam.ConsumeOptions, signal: AbortSignal) {
    const inFlight = new Set<Promise<void>>();
    const concurrency = Math.max(1, options.concurrency);
    while (!signal.aborted && !this.#closed) {
      const free = concurrency - inFlight.size;
      const rows =
        free > 0
          ? (this.#statements.claim.all({
              now: Date.now(),
              limit: Math.min(free, claimBatch),
            }) as CallRow[])
          : [];
      for (const row of rows) {
        // The freed slot is taken when the turn's settlements are committed (#commitSettlements
        // wakes this loop): one claim for the calls settled together, not one each.
        const run = this.#deliver(row, handle).finally(() => inFlight.delete(run));
        inFlight.add(run);
      }
      if (rows.length > 0 && rows.length === Math.min(free, claimBatch)) continue;
      await this.#sleepUntilWork(signal, inFlight.size < concurrency);
    }
    // Closed under it (a process going away): what is in flight is abandoned, and runs again
    // when the queue is next opened. Otherwise the deliveries in flight settle first.
    if (!this.#closed) {
      await Promise.all(inFlight);
      if (this.#settlements.length > 0) this.#commitSettlements();
    }
  }

  async #deliver(row: CallRow, handle: seam.DeliveryHandler): Promise<void> {
    const req = JSON.parse(row.request ?? '{}') as QueueRequest;
    const call = progressOf(row);
    const settlement = await records.settlementOf(
      handle,
      req,
      records.deliveryOf(row.call_id, call, row.redelivered === 1),
    );
    this.#settle(row.call_id, req, records.settledCall(call, settlement, Date.now()));
  }

  /**
   * Settlements are committed together once per turn, as enqueues are: a settlement lost to a
   * crash before its commit only means the call runs again (at least once).
   */
  #settle(callId: string, req: QueueRequest, next: records.CallProgress): void {
    this.#settlements.push(() => this.#writeSettlement(callId, req, next));
    if (this.#settlements.length === 1) setTimeout(this.#commitSettlements, settleEveryMs);
  }

  readonly #commitSettlements = (): void => {
    const batch = this.#settlements;
    this.#settlements = [];
    if (this.#closed) return;
    this.#db.transaction(() => batch.forEach((write) => write())).immediate();
    this.#notify();
  };

  /** One row update, whatever the outcome. */
  #writeSettlement(callId: string, req: QueueRequest, next: records.CallProgress): void {
    const dead = next.state === 'dead-lettered';
    this.#statements.settle.run({
      call_id: callId,
      state: next.state,
      next_at: next.nextAttemptAt ?? next.updatedAt,
      attempts: JSON.stringify(next.attempts),
      now: next.updatedAt,
      last_status: next.lastStatus ?? null,
      last_body: next.lastBodyExcerpt ?? null,
      reason: next.reason ?? null,
      // Finished calls keep only their record; dead letters keep the request to be replayed.
      keep_request: next.state === 'queued' || dead ? 1 : 0,
      summary: dead ? JSON.stringify(seam.summarizeRequest(req)) : null,
    });
  }

  status(callId: string): Promise<seam.CallRecord | undefined> {
    return settled(() => {
      const row = this.#statements.get.get(callId) as CallRow | undefined;
      return row && toRecord(row);
    });
  }

  cancel(callId: string): Promise<boolean> {
    return settled(() => {
      const row = this.#statements.get.get(callId) as CallRow | undefined;
      if (!row) throw new NotFoundError(`no call ${callId}`);
      return this.#statements.cancel.run({ now: Date.now(), call_id: callId }).changes === 1;
    });
  }

  /**
   * One statement over the dead letters' own index, LIMIT rows: the request's summary is made
   * by SQLite (json_extract), so that no body is read into this process.
   */
  deadLetters(query: seam.DeadLetterQuery): Promise<seam.DeadLetterPage> {
    return settled(() => this.#deadLetterPage(query));
  }

  #deadLetterPage(query: seam.DeadLetterQuery): seam.DeadLetterPage {
    const [at, seq] = query.cursor ? records.decodeCursor(query.cursor, isLocalCursor) : [-1, -1];
    const params = { at, seq, limit: query.limit + 1 };
    const rows = (
      query.function === undefined
        ? this.#statements.deadLetterPage.all(params)
        : this.#statements.deadLetterPageOf.all({ ...params, function: query.function })
    ) as LetterRow[];
    const items = rows.slice(0, query.limit).map((row) => ({
      ...toRecord(row),
      request: row.summary
        ? (JSON.parse(row.summary) as seam.RequestSummary)
        : {
            Method: row.method ?? '',
            Path: row.path ?? '',
            QueryString: row.query ?? '',
            BodyBytes: seam.base64Bytes(row.body_length ?? 0, row.body_tail ?? ''),
          },
    }));
    const last = rows[query.limit - 1];
    const page: seam.DeadLetterPage = { items };
    if (rows.length > query.limit && last)
      page.next = records.encodeCursor([last.updated_at, last.seq]);
    return page;
  }

  deadLetter(callId: string): Promise<seam.DeadLetter | undefined> {
    return settled(() => {
      const row = this.#statements.get.get(callId) as CallRow | undefined;
      if (!row || row.state !== 'dead-lettered') return undefined;
      return { ...toRecord(row), request: JSON.parse(row.request ?? '{}') as QueueRequest };
    });
  }

  /** A batch at a time, each within the room left under the cap. */
  redrive(filter: seam.DeadLetterFilter = {}): Promise<string[]> {
    try {
      const ids: string[] = [];
      let full = false;
      for (;;) {
        const batch = this.#db
          .transaction(() => {
            const room = this.#maxQueuedCalls - this.#queuedNow();
            const limit = Math.min(redriveBatch, Math.max(0, room));
            const rows =
              limit === 0
                ? []
                : (this.#statements.redrive.all({
                    now: Date.now(),
                    limit,
                    ...filterParams(filter),
                  }) as { call_id: string }[]);
            // Full when letters are left that no room took.
            full =
              rows.length === limit &&
              limit < redriveBatch &&
              this.#statements.anyDeadLetter.get(filterParams(filter)) !== undefined;
            return rows;
          })
          .immediate();
        for (const row of batch) ids.push(row.call_id);
        if (batch.length > 0) this.#notify();
        if (full) {
          return Promise.reject(
            records.redriveStopped(records.queueFull(this.#maxQueuedCalls), ids.length),
          );
        }
        if (batch.length < redriveBatch) return Promise.resolve(ids);
      }
    } catch (error) {
      return Promise.reject(storeError(error));
    }
  }

  purge(filter: seam.DeadLetterFilter = {}): Promise<number> {
    return settled(() => this.#statements.purge.run(filterParams(filter)).changes);
  }

  bury(buried: seam.BuriedCall): Promise<string> {
    const callId = records.callIdOf(buried.request) ?? randomUUID();
    const call = records.buriedCall(buried, Date.now());
    let changes: number;
    try {
      ({ changes } = this.#bury({
        call_id: callId,
        function: buried.request.Function,
        request: JSON.stringify(buried.request),
        now: call.updatedAt,
        attempts: JSON.stringify(call.attempts),
        last_status: call.lastStatus ?? null,
        last_body: call.lastBodyExcerpt ?? null,
        reason: call.reason ?? null,
        summary: JSON.stringify(seam.summarizeRequest(buried.request)),
      }));
    } catch (error) {
      return Promise.reject(storeError(error));
    }
    if (changes === 0) return Promise.reject(new ConflictError(`call id ${callId} is taken`));
    return Promise.resolve(callId);
  }

  /** Inserts a dead letter and tallies it, together. */
  readonly #bury = (params: Record<string, unknown>): { changes: number } =>
    this.#db.transaction(() => {
      const { changes } = this.#statements.bury.run(params);
      if (changes === 1) {
        this.#statements.tally.run({ function: params.function, kind: 'dead', n: 1 });
      }
      return { changes };
    })();

  /**
   * From the per-function counters the triggers keep, and one index lookup per function with
   * calls waiting: the cost grows with the functions, not with the backlog.
   */
  stats(): Promise<Record<string, seam.FunctionQueueStats>> {
    return settled(() => {
      const tallies = new Map<string, records.FunctionTally>();
      const tally = (fn: string) => {
        let entry = tallies.get(fn);
        if (!entry) tallies.set(fn, (entry = { live: 0, running: 0, dead: 0 }));
        return entry;
      };
      const counts = this.#statements.tallies.all() as {
        function: string;
        kind: 'live' | 'dead';
        count: number;
      }[];
      for (const row of counts) tally(row.function)[row.kind] = row.count;
      const running = this.#statements.running.all() as { function: string; count: number }[];
      for (const row of running) tally(row.function).running = row.count;
      for (const [fn, entry] of tallies) {
        if (entry.live <= entry.running) continue;
        const { oldest } = this.#statements.oldestQueued.get(fn) as { oldest: number | null };
        if (oldest !== null) entry.oldestQueuedAt = oldest;
      }
      return records.statsOf(tallies, Date.now());
    });
  }

  /** Calls waiting or running now, from the per-function counters. */
  #queuedNow(): number {
    return (this.#statements.queuedNow.get() as { n: number }).n;
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    // What is settled already is kept; what is still in flight is abandoned.
    if (this.#settlements.length > 0) this.#commitSettlements();
    this.#closed = true;
    clearInterval(this.#pruner);
    for (const wake of this.#wake) wake();
    this.#db.close();
    return Promise.resolve();
  }

  #notify(): void {
    const waiting = this.#wake;
    this.#wake = [];
    for (const wake of waiting) wake();
  }

  /** Until a call is queued or settled, the next scheduled call is due, or the signal aborts. */
  async #sleepUntilWork(signal: AbortSignal, slotFree: boolean): Promise<void> {
    let next = slotFree
      ? (this.#statements.nextDue.get() as { next_at: number | null }).next_at
      : null;
    if (slotFree && this.#pollMs !== undefined) {
      next = Math.min(next ?? Infinity, Date.now() + this.#pollMs);
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer =
        next === null ? undefined : setTimeout(done, Math.max(0, next - Date.now()) + 1);
      signal.addEventListener('abort', done);
      this.#wake.push(done);
    });
  }

  #prune(): void {
    const now = Date.now();
    // On a timer: a full or locked disk must not throw out of it (it would end the process);
    // the next round prunes.
    try {
      this.#statements.prune.run(now - this.#retentionMs);
      this.#statements.forgetExpiredKeys.run(now);
      this.#statements.forgetEmptyCounts.run();
    } catch {
      // left for the next round
    }
  }
}

/** A synchronous read or write as a promise; a store failure as storeError says (507, 503). */
function settled<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(storeError(error));
  }
}

/** SQLite's codes for a database it cannot use now (locked, unreadable, damaged, read-only). */
const unusableCodes =
  /^SQLITE_(BUSY|LOCKED|IOERR|CORRUPT|NOTADB|CANTOPEN|READONLY|PERM|PROTOCOL|NOMEM)(_|$)/;

/**
 * What a failed write means to the caller: a full disk is a 507 (nothing can be kept until room
 * is made), a database that cannot be used now a 503; anything else (a bug) stays as it is.
 */
function storeError(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  if (error instanceof FnbusError) return error;
  const code = (error as { code?: unknown }).code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') {
    return new InsufficientStorageError('the queue cannot store calls: its disk is full', {
      cause: error,
    });
  }
  if (typeof code === 'string' && unusableCodes.test(code)) {
    return new UnavailableError(`the queue cannot store calls now (${code})`, { cause: error });
  }
  return error;
}

function filterParams(filter: seam.DeadLetterFilter) {
  return { call_id: filter.callId ?? null, function: filter.function ?? null };
}

/** A row's progress, as the state machine (call-records) reads it. */
function progressOf(row: CallRow): records.CallProgress {
  const call: records.CallProgress = {
    state: row.state,
    attempts: JSON.parse(row.attempts) as seam.AttemptRecord[],
    queuedAt: row.queued_at,
    priorAttempts: row.prior_attempts,
    updatedAt: row.updated_at,
    nextAttemptAt: row.next_at,
  };
  if (row.last_status !== null) call.lastStatus = row.last_status;
  if (row.last_body !== null) call.lastBodyExcerpt = row.last_body;
  if (row.reason !== null) call.reason = row.reason;
  return call;
}

function toRecord(row: CallRow): seam.CallRecord {
  return records.callRecordOf(row.call_id, row.function, row.enqueued_at, progressOf(row));
}

/** What a call in `row`'s state is tallied as (call-records' records.tallyOfState), in SQL. */
function kindOf(row: 'old' | 'new'): string {
  const cases = Object.entries(records.tallyOfState)
    .filter(([, kind]) => kind !== undefined)
    .map(([state, kind]) => `WHEN '${state}' THEN '${kind}'`);
  return `(CASE ${row}.state ${cases.join(' ')} END)`;
}

const schema = `
CREATE TABLE IF NOT EXISTS calls (
  call_id TEXT PRIMARY KEY,
  function TEXT NOT NULL,
  state TEXT NOT NULL,
  request TEXT,
  enqueued_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  next_at INTEGER NOT NULL,
  attempts TEXT NOT NULL DEFAULT '[]',
  redelivered INTEGER NOT NULL DEFAULT 0,
  queued_at INTEGER NOT NULL,
  prior_attempts INTEGER NOT NULL DEFAULT 0,
  last_status INTEGER,
  last_body TEXT,
  reason TEXT,
  -- Dead letters: their request as listings show it (JSON), so that a listing reads no body.
  summary TEXT
);
CREATE INDEX IF NOT EXISTS calls_due ON calls (state, next_at);
DROP INDEX IF EXISTS calls_function;
CREATE INDEX IF NOT EXISTS calls_function_age ON calls (function, state, enqueued_at);
-- Dead letters in listing order, alone in their indexes: paging them reads no other call.
CREATE INDEX IF NOT EXISTS calls_dead ON calls (updated_at) WHERE state = 'dead-lettered';
CREATE INDEX IF NOT EXISTS calls_dead_function ON calls (function, updated_at)
  WHERE state = 'dead-lettered';
CREATE TABLE IF NOT EXISTS idempotency_keys (
  -- A digest of the function and the caller's key; fingerprint: of method, path, query, body.
  key TEXT PRIMARY KEY,
  call_id TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  fingerprint TEXT
);
-- Per function, how many calls are live (queued or running) and dead-lettered, kept in the
-- writes' own transactions: the cap and stats read these, not the calls. Inserts are tallied by
-- the code, once per function per batch (enqueue, bury); state changes and deletes by triggers.
-- A claim (queued to running) changes no tally: a call that succeeds costs its batch's share of
-- one tally and one trigger at its finish.
CREATE TABLE IF NOT EXISTS call_tallies (
  function TEXT NOT NULL,
  kind TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (function, kind)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS calls_tallied_update AFTER UPDATE OF state ON calls
  WHEN ${kindOf('old')} IS NOT ${kindOf('new')} BEGIN
  UPDATE call_tallies SET count = count - 1
    WHERE function = old.function AND kind = ${kindOf('old')};
  INSERT INTO call_tallies SELECT new.function, ${kindOf('new')}, 1
    WHERE ${kindOf('new')} IS NOT NULL
    ON CONFLICT (function, kind) DO UPDATE SET count = count + 1;
END;
CREATE TRIGGER IF NOT EXISTS calls_tallied_delete AFTER DELETE ON calls
  WHEN ${kindOf('old')} IS NOT NULL BEGIN
  UPDATE call_tallies SET count = count - 1
    WHERE function = old.function AND kind = ${kindOf('old')};
END;
`;

/**
 * The schema, brought up to date in one write transaction (the worker thread may open the file
 * at the same time): a database from an older fnbus gets the fingerprint column, and its
 * counters are counted once from its calls.
 */
function migrate(db: Database.Database): void {
  db.transaction(() => {
    const counted = db
      .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'call_tallies'`)
      .get();
    db.exec(schema);
    const columns = db.prepare(`PRAGMA table_info(idempotency_keys)`).all() as { name: string }[];
    if (!columns.some((column) => column.name === 'fingerprint')) {
      db.exec(`ALTER TABLE idempotency_keys ADD COLUMN fingerprint TEXT`);
    }
    const callColumns = db.prepare(`PRAGMA table_info(calls)`).all() as { name: string }[];
    if (!callColumns.some((column) => column.name === 'summary')) {
      db.exec(`ALTER TABLE calls ADD COLUMN summary TEXT`);
    }
    if (!counted) {
      db.exec(`INSERT INTO call_tallies (function, kind, count)
               SELECT function, ${kindOf('new').replaceAll('new.', '')} AS kind, count(*) FROM calls
               WHERE state IN ('queued', 'running', 'dead-lettered') GROUP BY function, kind`);
    }
  }).immediate();
}

/**
 * What a dead-letter page selects: the record and the request's summary, kept with the letter
 * (or, for a letter an older fnbus kept, made by SQLite from the request).
 */
const letterColumns = `call_id, function, state, enqueued_at, updated_at, next_at, attempts,
  last_status, last_body, reason, rowid AS seq, summary,
  CASE WHEN summary IS NULL THEN json_extract(request, '$.Method') END AS method,
  CASE WHEN summary IS NULL THEN json_extract(request, '$.Path') END AS path,
  CASE WHEN summary IS NULL THEN json_extract(request, '$.QueryString') END AS query,
  CASE WHEN summary IS NULL THEN length(json_extract(request, '$.Body')) END AS body_length,
  CASE WHEN summary IS NULL THEN substr(json_extract(request, '$.Body'), -2) END AS body_tail`;

function prepare(db: Database.Database) {
  return {
    insert: db.prepare(
      `INSERT INTO calls (call_id, function, state, request, enqueued_at, updated_at, next_at,
         queued_at)
       VALUES (@call_id, @function, 'queued', @request, @now, @now, @now, @now)
       ON CONFLICT (call_id) DO NOTHING`,
    ),
    bury: db.prepare(
      `INSERT INTO calls (call_id, function, state, request, enqueued_at, updated_at, next_at,
         queued_at, attempts, last_status, last_body, reason, summary)
       VALUES (@call_id, @function, 'dead-lettered', @request, @now, @now, @now, @now, @attempts,
         @last_status, @last_body, @reason, @summary)
       ON CONFLICT (call_id) DO NOTHING`,
    ),
    // Oldest due first; rowid breaks ties in arrival order.
    claim: db.prepare(
      `UPDATE calls SET state = 'running', updated_at = @now
       WHERE rowid IN (SELECT rowid FROM calls WHERE state = 'queued' AND next_at <= @now
                       ORDER BY next_at, rowid LIMIT @limit)
       RETURNING *`,
    ),
    // A settlement of a running call: whatever its outcome, one row update.
    settle: db.prepare(
      `UPDATE calls SET state = @state, next_at = @next_at, attempts = @attempts,
         updated_at = @now, redelivered = 0, last_status = @last_status, last_body = @last_body,
         reason = @reason, request = CASE WHEN @keep_request = 1 THEN request ELSE NULL END,
         summary = @summary
       WHERE call_id = @call_id AND state = 'running'`,
    ),
    requeueRunning: db.prepare(
      `UPDATE calls SET state = 'queued', redelivered = 1, next_at = @now WHERE state = 'running'`,
    ),
    get: db.prepare(`SELECT * FROM calls WHERE call_id = ?`),
    cancel: db.prepare(
      `UPDATE calls SET state = 'cancelled', updated_at = @now, reason = 'cancelled',
         request = NULL
       WHERE call_id = @call_id AND state = 'queued'`,
    ),
    deadLetterPage: db.prepare(
      // The dead letters' own index, named: the planner would otherwise sort every letter.
      `SELECT ${letterColumns} FROM calls INDEXED BY calls_dead WHERE state = 'dead-lettered'
         AND (updated_at, rowid) > (@at, @seq)
       ORDER BY updated_at, rowid LIMIT @limit`,
    ),
    deadLetterPageOf: db.prepare(
      `SELECT ${letterColumns} FROM calls INDEXED BY calls_dead_function
       WHERE state = 'dead-lettered' AND function = @function
         AND (updated_at, rowid) > (@at, @seq)
       ORDER BY updated_at, rowid LIMIT @limit`,
    ),
    anyDeadLetter: db.prepare(
      `SELECT 1 FROM calls WHERE state = 'dead-lettered'
         AND (@call_id IS NULL OR call_id = @call_id) AND (@function IS NULL OR function = @function)
       LIMIT 1`,
    ),
    redrive: db.prepare(
      `UPDATE calls SET state = 'queued', next_at = @now, updated_at = @now, queued_at = @now,
         prior_attempts = json_array_length(attempts), reason = NULL
       WHERE rowid IN (SELECT rowid FROM calls WHERE state = 'dead-lettered'
         AND (@call_id IS NULL OR call_id = @call_id) AND (@function IS NULL OR function = @function)
         ORDER BY updated_at, rowid LIMIT @limit)
       RETURNING call_id`,
    ),
    purge: db.prepare(
      `DELETE FROM calls WHERE state = 'dead-lettered'
         AND (@call_id IS NULL OR call_id = @call_id) AND (@function IS NULL OR function = @function)`,
    ),
    tallies: db.prepare(`SELECT function, kind, count FROM call_tallies WHERE count > 0`),
    tally: db.prepare(
      `INSERT INTO call_tallies (function, kind, count) VALUES (@function, @kind, @n)
       ON CONFLICT (function, kind) DO UPDATE SET count = count + @n`,
    ),
    // Running calls are few (at most the workers' max_inflight): counted from the calls.
    running: db.prepare(
      `SELECT function, count(*) AS count FROM calls WHERE state = 'running' GROUP BY function`,
    ),
    oldestQueued: db.prepare(
      `SELECT min(enqueued_at) AS oldest FROM calls WHERE function = ? AND state = 'queued'`,
    ),
    queuedNow: db.prepare(
      `SELECT coalesce(sum(count), 0) AS n FROM call_tallies WHERE kind = 'live'`,
    ),
    forgetEmptyCounts: db.prepare(`DELETE FROM call_tallies WHERE count <= 0`),
    nextDue: db.prepare(`SELECT min(next_at) AS next_at FROM calls WHERE state = 'queued'`),
    prune: db.prepare(
      `DELETE FROM calls WHERE state IN ('succeeded', 'failed', 'cancelled') AND updated_at < ?`,
    ),
    findKey: db.prepare(`SELECT call_id, fingerprint FROM idempotency_keys WHERE key = ?`),
    forgetKey: db.prepare(`DELETE FROM idempotency_keys WHERE key = ? AND expires_at <= ?`),
    rememberKey: db.prepare(
      `INSERT INTO idempotency_keys (key, call_id, expires_at, fingerprint) VALUES (?, ?, ?, ?)`,
    ),
    forgetExpiredKeys: db.prepare(`DELETE FROM idempotency_keys WHERE expires_at <= ?`),
  };
}
