import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type Consumer,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import {
  AuthorizationError,
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  InvalidArgumentError,
  InvalidSubjectError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
  connect,
  headers,
  nanos,
  type NatsConnection,
} from '@nats-io/transport-node';
import { newCallId } from '../../core/call-id.js';
import {
  ConfigError,
  ConflictError,
  FnbusError,
  InsufficientStorageError,
  NotFoundError,
  QueueFullError,
  UnavailableError,
  ValidationError,
} from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import * as seam from '../../core/queue.js';
import { Backoff } from '../../core/retry-policy.js';
import type { QueueRequest } from '../../core/queue-types.js';
import * as records from '../call-records.js';
import {
  callKey,
  createOnce,
  functionOfToken,
  isStale,
  isoOf,
  msOf,
  progressOf,
  readCall,
  subjectToken,
  toCallRecord,
  updateCall,
  withProgress,
  type CallEntry,
  type StoredCall,
} from './stored-call.js';
import { RecordBucket } from './record-bucket.js';
import { StreamWriter } from './stream-writer.js';

/**
 * `leaseMs` is JetStream's ack wait: live workers keep their deliveries with progress acks.
 * `maxQueuedCalls` is the work stream's `max_msgs` (discard new): the server itself refuses the
 * next publish.
 */
export interface NatsQueueOptions extends records.QueueOptions {
  /** The server, `nats://host:port` (a comma-separated list for a cluster). */
  url: string;
  /** Names the stream (and prefixes its consumer, subjects and KV buckets); default `fnbus-async`. */
  name?: string;
  /** Deletion markers are swept every `everyMs` once `olderThanMs` old (10 min, 1 min). */
  sweep?: { everyMs: number; olderThanMs: number };
}

/** What one connection has set up. */
interface Backend {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  consumer: Consumer;
  /** Acknowledged writes to streams, cheaper than `js.publish` (see StreamWriter). */
  writer: StreamWriter;
  /** Calls that are queued, running or dead-lettered (dead letters with their request). */
  live: RecordBucket;
  /** Calls that are over (succeeded, failed, cancelled), for `retentionMs`. */
  done: RecordBucket;
  /** Idempotency-Key digest → the first call's id (and message id), for `idempotencyWindowMs`. */
  keys: RecordBucket;
  /** Dead letters' requests, apart from their records (which stay small to scan). */
  letters: KV;
}

/** A delivery this worker has claimed: the record says `running`, at `revision`. */
interface Claim {
  key: string;
  revision: number;
  call: StoredCall;
  req: QueueRequest;
  /** The record said `running` already: a worker took the call and never settled it. */
  redelivered: boolean;
}

/** How long enqueue and settlements keep retrying through a lost connection. */
const persistForMs = 15_000;
/** How often deletion markers are swept from the live bucket (see #sweep). */
const sweepDefaults = { everyMs: 10 * 60_000, olderThanMs: 60_000 };
const callIdHeader = 'Fnbus-Call-Id';
/** The call's record when the message was published, and its revision: `{revision, call}`. */
const recordHeader = 'Fnbus-Record';
/**
 * Instead of `Fnbus-Record` on a call's first message: `<revision> <enqueued at, ms>`, from which
 * (with the call id, the message id and the request's function) the record as enqueued is made
 * again (`enqueuedRecord`), a few bytes rather than the whole record.
 */
const queuedHeader = 'Fnbus-Queued';
/** Room kept in a message for the rest of a dead letter's record (attempts, excerpt...). */
const recordRoomBytes = 64 * 1024;
/** Most records of the live bucket one dead-letter page reads, other calls' included. */
const maxScanned = 5000;
/** Where a dead-letter page ended: the next sequence of the live bucket's stream to read. */
const isSequence = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;

/**
 * The queue on NATS JetStream, shared by every gateway and worker that names the same server and
 * queue. A work-queue stream carries one message per call to a durable pull consumer that all
 * workers share; KV buckets keep the call records, which decide what a delivered message means.
 * A message is removed only once its call is settled, so a killed worker's calls come back after
 * `ackWaitMs`.
 *
 * The record is the source of truth, the message only wakes a worker: every delivery is checked
 * against its record first, so a message that comes back after a lost ack, a restart of the server
 * or a cancel is dropped rather than run again. Records are written with compare-and-set on their
 * revision, so two workers, or a worker and a cancel, never both win.
 */
export class NatsQueue implements seam.Queue {
  readonly #url: string;
  readonly #name: string;
  readonly #retentionMs: number;
  readonly #idempotencyWindowMs: number;
  readonly #ackWaitMs: number;
  readonly #maxQueuedCalls: number;
  /** This queue's deliveries in its handlers, per function: what stats() asks of every worker. */
  readonly #running = new Map<string, number>();
  readonly #logger: Logger;
  #backend: Promise<Backend> | undefined;
  /** Aborts when the queue closes: consume loops and retries stop at once. */
  readonly #closing = new AbortController();
  readonly #sweeper: NodeJS.Timeout;
  readonly #markerAgeMs: number;
  /** Whether the connection is up (see #follow); enqueue waits a little for it, then says 503. */
  #online = true;
  readonly #onReconnect = new Set<() => void>();

  constructor(options: NatsQueueOptions) {
    this.#url = options.url;
    this.#name = options.name ?? 'fnbus-async';
    if (!/^[-\w]+$/.test(this.#name)) {
      throw new ConfigError([`queue name "${this.#name}": use letters, digits, - and _`]);
    }
    ({
      retentionMs: this.#retentionMs,
      idempotencyWindowMs: this.#idempotencyWindowMs,
      leaseMs: this.#ackWaitMs,
      maxQueuedCalls: this.#maxQueuedCalls,
    } = records.queueSettings(options));
    this.#logger = options.logger ?? silentLogger;
    const sweep = options.sweep ?? sweepDefaults;
    this.#markerAgeMs = sweep.olderThanMs;
    this.#sweeper = setInterval(() => void this.#sweep(), sweep.everyMs).unref();
  }

  async enqueue(req: QueueRequest, options: seam.EnqueueOptions = {}): Promise<seam.Enqueued> {
    try {
      await this.#reachable();
      return await this.#enqueue(req, options);
    } catch (error) {
      throw serverError(error);
    }
  }

  async #enqueue(req: QueueRequest, options: seam.EnqueueOptions): Promise<seam.Enqueued> {
    const backend = await this.#connected();
    const data = JSON.stringify(req);
    // The request travels as one message, and a dead letter keeps it in one record beside the
    // attempts: both must fit the server's max_payload.
    const limit = (backend.nc.info?.max_payload ?? 1024 * 1024) - recordRoomBytes;
    if (Buffer.byteLength(data) > limit) {
      throw new ValidationError(
        `the async request is ${Buffer.byteLength(data)} bytes as a message; the NATS server ` +
          `takes ${limit} at most (its max_payload, less room for the call's record)`,
      );
    }
    const callId = records.callIdOf(req) ?? newCallId();
    const call = enqueuedRecord(callId, req.Function, `${callId}~${randomUUID()}`, Date.now());
    // Whatever this enqueue wrote is taken back if it fails: the caller was told no.
    const undo: (() => Promise<unknown>)[] = [];
    try {
      if (options.idempotencyKey !== undefined) {
        const digest = records.scopedIdempotencyKey(req, options.idempotencyKey);
        const fingerprint = records.requestFingerprint(req);
        const mine = JSON.stringify({ callId, messageId: call.messageId, fingerprint });
        const revision = await this.#persist(() => createOnce(backend.keys, digest, mine));
        if (revision === undefined) {
          const seen = await backend.keys.kv.get(digest);
          if (seen?.operation !== 'PUT') {
            throw new UnavailableError('Idempotency-Key just expired; try again');
          }
          return records.sameRequestOr422(
            seen.json<{ callId: string; fingerprint?: string }>(),
            fingerprint,
          );
        }
        undo.push(() => backend.keys.delete(digest, revision));
      }
      const key = callKey(callId);
      const revision = await this.#persist(() =>
        createOnce(backend.live, key, JSON.stringify(call)),
      );
      if (revision !== undefined) {
        undo.push(() => backend.live.delete(key, revision));
      }
      // A finished call moved to `done` before leaving `live`, so looking there after creating in
      // `live` cannot miss it.
      // A finished call keeps its id for the retention; a minted id cannot be one of them.
      const taken =
        revision === undefined ||
        (!options.freshCallId && (await this.#persist(() => readCall(backend.done, key))));
      if (taken) throw new ConflictError(`call id ${callId} is taken: send another X-Call-Id`);
      await this.#publish(backend, call, revision, data, true);
      return { callId, duplicate: false };
    } catch (error) {
      for (const step of undo.reverse()) await step().catch(() => {});
      throw error;
    }
  }

  async consume(handle: seam.DeliveryHandler, options: seam.ConsumeOptions, signal: AbortSignal) {
    const stop = AbortSignal.any([signal, this.#closing.signal]);
    const answering = this.#answerRunning();
    const concurrency = Math.max(1, Math.floor(options.concurrency));
    const inFlight = new Set<Promise<void>>();
    // Woken when a delivery ends (or on stop): one waiter, not a reaction on every delivery.
    let wake: (() => void) | undefined;
    const woken = () => {
      const waiter = wake;
      wake = undefined;
      waiter?.();
    };
    stop.addEventListener('abort', woken);
    // Progress acks keep every delivery in hand ours while its function runs, however long that
    // is: one timer for all, each delivery acked at least every ackWait / 3.
    const held = new Set<JsMsg>();
    const beat = setInterval(
      () => {
        for (const msg of held) attempt(() => msg.working());
      },
      Math.max(50, this.#ackWaitMs / 3),
    );
    while (!stop.aborted) {
      try {
        const backend = await this.#connected();
        // A continuous pull: the client keeps up to `concurrency` messages coming (the server
        // holds the rest for other workers), so a free slot never waits for a batch to fill.
        const messages = await backend.consumer.consume({ max_messages: concurrency });
        const stopMessages = () => void messages.stop();
        stop.addEventListener('abort', stopMessages);
        if (stop.aborted) stopMessages(); // aborted while the pull was being set up
        try {
          for await (const msg of messages) {
            while (inFlight.size >= concurrency && !stop.aborted) {
              await new Promise<void>((resolve) => (wake = resolve));
            }
            if (stop.aborted) {
              // Pulled as we stopped: hand it straight back, untouched.
              attempt(() => msg.nak());
              continue;
            }
            const run = this.#deliver(backend, msg, handle, held).finally(() => {
              inFlight.delete(run);
              woken();
            });
            inFlight.add(run);
          }
        } finally {
          stop.removeEventListener('abort', stopMessages);
        }
      } catch (error) {
        if (stop.aborted) break;
        this.#logger.warn({ err: error, queue: this.#name }, 'pulling calls failed; retrying');
        await pause(1000, stop);
      }
    }
    // Closed under it (a process going away): what is in flight is abandoned and comes back
    // after the ack wait. Otherwise the deliveries in flight settle first.
    stop.removeEventListener('abort', woken);
    if (!this.#closing.signal.aborted) await Promise.all(inFlight);
    clearInterval(beat);
    (await answering)?.unsubscribe();
  }

  /**
   * While consuming, answers stats()' question on core NATS (no stream, nothing stored): this
   * queue's deliveries in their handlers, per function. Running calls are not written anywhere
   * on their way, so that a claim costs one write.
   */
  async #answerRunning() {
    try {
      const { nc } = await this.#connected();
      return nc.subscribe(this.#runningSubject(), {
        callback: (_error, msg) => {
          attempt(() => msg.respond(JSON.stringify([...this.#running])));
        },
      });
    } catch {
      return undefined; // not connected: the consume loop says so
    }
  }

  #runningSubject(): string {
    return `${this.#name}.running`;
  }

  async status(callId: string): Promise<seam.CallRecord | undefined> {
    const backend = await this.#connected();
    const key = callKey(callId);
    const entry = (await readCall(backend.live, key)) ?? (await readCall(backend.done, key));
    return entry && toCallRecord(entry.call);
  }

  async cancel(callId: string): Promise<boolean> {
    const backend = await this.#connected();
    const key = callKey(callId);
    for (;;) {
      const entry = await readCall(backend.live, key);
      if (!entry) {
        if (await readCall(backend.done, key)) return false;
        throw new NotFoundError(`no call ${callId}`);
      }
      if (entry.call.state !== 'queued') return false;
      const cancelled = withProgress(
        entry.call,
        records.cancelledCall(progressOf(entry.call), Date.now()),
      );
      const revision = await updateCall(backend.live, entry.key, cancelled, entry.revision);
      if (revision === undefined) continue; // a worker took it meanwhile: look again
      // Its message stays in the stream until delivered, and is dropped then: no record in `live`.
      await this.#persist(() => this.#retire(backend, entry.key, cancelled, revision));
      return true;
    }
  }

  async deadLetters(query: seam.DeadLetterQuery): Promise<seam.DeadLetterPage> {
    const backend = await this.#connected();
    const page = await this.#deadPage(backend, query, seam.deadLetterPageBytes);
    const items = page.items.map(({ call }) => ({
      ...toCallRecord(call),
      // (Neither: a letter whose writer died between its record and its request.)
      request:
        call.letter ??
        (call.request
          ? seam.summarizeRequest(call.request)
          : { Method: '', Path: '', QueryString: '', BodyBytes: 0 }),
    }));
    return page.next === undefined ? { items } : { items, next: page.next };
  }

  async deadLetter(callId: string): Promise<seam.DeadLetter | undefined> {
    const backend = await this.#connected();
    const entry = await readCall(backend.live, callKey(callId));
    if (entry?.call.state !== 'dead-lettered') return undefined;
    const request = await this.#letterRequest(backend, entry.call);
    return request && { ...toCallRecord(entry.call), request };
  }

  /**
   * A dead letter's request: its message in the letters stream, or (an older fnbus's letter)
   * inline or in the letters bucket.
   */
  async #letterRequest(backend: Backend, call: StoredCall): Promise<QueueRequest | undefined> {
    if (call.request) return call.request;
    if (call.letterSeq !== undefined) {
      const stored = await backend.jsm.streams
        .getMessage(this.#deadStream(), { seq: call.letterSeq })
        .catch(() => null);
      return stored?.json<QueueRequest>();
    }
    if (!call.letterKey) return undefined;
    const stored = await backend.letters.get(call.letterKey);
    return stored?.operation === 'PUT' ? stored.json<QueueRequest>() : undefined;
  }

  async redrive(filter: seam.DeadLetterFilter = {}): Promise<string[]> {
    const backend = await this.#connected();
    const redriven: string[] = [];
    for await (const letters of this.#deadBatches(backend, filter)) {
      for (const letter of letters) await this.#redriveOne(backend, letter, redriven);
    }
    return redriven;
  }

  async #redriveOne(backend: Backend, letter: CallEntry, redriven: string[]): Promise<void> {
    const { request: _inline, letterKey, letterSeq, letter: _summary, ...call } = letter.call;
    const request = await this.#letterRequest(backend, letter.call);
    if (!request) return; // every dead letter keeps its request; this one cannot be replayed
    const queued = withProgress(
      { ...call, messageId: `${call.callId}~${randomUUID()}` },
      records.redrivenCall(progressOf(call), Date.now()),
    );
    // The record first, so that only one redrive of a letter wins; then its new message.
    const revision = await updateCall(backend.live, letter.key, queued, letter.revision);
    if (revision === undefined) return; // redriven or purged meanwhile
    try {
      await this.#publish(backend, queued, revision, JSON.stringify(request));
    } catch (error) {
      // Back to a dead letter. Should the message have been stored after all, its id is not
      // the record's, so it is dropped when delivered.
      await updateCall(backend.live, letter.key, letter.call, revision).catch(() => {});
      throw error instanceof QueueFullError
        ? records.redriveStopped(error, redriven.length)
        : error;
    }
    redriven.push(call.callId);
    // The message carries the request now.
    await this.#dropLetter(backend, { letterKey, letterSeq });
  }

  /** Deletes a dead letter's request (its message, or an older fnbus's bucket entry). */
  async #dropLetter(backend: Backend, { letterKey, letterSeq }: Partial<StoredCall>) {
    if (letterSeq !== undefined) {
      await backend.jsm.streams.deleteMessage(this.#deadStream(), letterSeq).catch(() => false);
    }
    if (letterKey) await backend.letters.delete(letterKey).catch(() => {});
  }

  /**
   * Keeps a dead letter's request as a message of the letters stream, on its function's subject
   * (the stream's per-subject counts are the dead letters per function); returns its sequence.
   * Deduplicated by `id`, so that a retry through a reconnect keeps one.
   */
  async #keepLetter(backend: Backend, req: QueueRequest, id: string): Promise<number> {
    const dedup = headers();
    dedup.set('Nats-Msg-Id', id);
    const ack = await this.#persist(() =>
      backend.writer.publish(this.#subject('dead', req.Function), JSON.stringify(req), dedup),
    );
    if (!ack) throw new Error('the dead letter was not stored');
    return ack.seq;
  }

  #deadStream(): string {
    return `${this.#name}-dead`;
  }

  /** `<name>.<kind>.<function's token>`: the work stream's and the letters stream's subjects. */
  #subject(kind: 'calls' | 'dead', fn: string): string {
    return `${this.#name}.${kind}.${subjectToken(fn)}`;
  }

  async purge(filter: seam.DeadLetterFilter = {}): Promise<number> {
    const backend = await this.#connected();
    let purged = 0;
    for await (const letters of this.#deadBatches(backend, filter)) {
      for (const letter of letters) {
        try {
          await backend.live.delete(letter.key, letter.revision);
          purged += 1;
        } catch (error) {
          if (!isStale(error)) throw error; // else: redriven meanwhile
          continue;
        }
        await this.#dropLetter(backend, letter.call);
      }
    }
    return purged;
  }

  async bury(buried: seam.BuriedCall): Promise<string> {
    const backend = await this.#connected();
    const callId = records.callIdOf(buried.request) ?? newCallId();
    const messageId = `${callId}~${randomUUID()}`;
    // The request first: a record never names a letter not yet there.
    const letterSeq = await this.#keepLetter(backend, buried.request, `${messageId}~letter`);
    const call: StoredCall = {
      ...withProgress(
        {
          callId,
          function: buried.request.Function,
          enqueuedAt: new Date().toISOString(),
          messageId,
        },
        records.buriedCall(buried, Date.now()),
      ),
      letterSeq,
      letter: seam.summarizeRequest(buried.request),
    };
    // No message: a dead letter waits in `live` until redriven (a new message) or purged.
    const key = callKey(callId);
    const revision = await this.#persist(() => createOnce(backend.live, key, JSON.stringify(call)));
    if (revision === undefined) {
      await this.#dropLetter(backend, { letterSeq });
      throw new ConflictError(`call id ${callId} is taken`);
    }
    return callId;
  }

  /**
   * From what the server and the workers keep anyway, O(functions) whatever the backlog: the
   * work stream's and the letters stream's message counts per subject (one subject a function),
   * the deliveries each consuming queue has in its handlers (asked on core NATS), and, per
   * function with calls waiting, its oldest message (one direct get). Cancelled calls' and stale
   * copies' messages count until a worker drops them; the oldest message may be one running.
   */
  async stats(): Promise<Record<string, seam.FunctionQueueStats>> {
    const backend = await this.#connected();
    const perSubject = async (stream: string, kind: 'calls' | 'dead') => {
      const prefix = `${this.#name}.${kind}.`;
      const info = await backend.jsm.streams.info(stream, { subjects_filter: `${prefix}>` });
      return Object.entries(info.state.subjects ?? {}).map(
        ([subject, count]) => [functionOfToken(subject.slice(prefix.length)), count] as const,
      );
    };
    const [live, dead, running] = await Promise.all([
      perSubject(this.#name, 'calls'),
      perSubject(this.#deadStream(), 'dead'),
      this.#runningEverywhere(backend),
    ]);
    const tallies = new Map<string, records.FunctionTally>();
    const tally = (fn: string) => {
      let entry = tallies.get(fn);
      if (!entry) tallies.set(fn, (entry = { live: 0, running: 0, dead: 0 }));
      return entry;
    };
    for (const [fn, count] of live) tally(fn).live += count;
    for (const [fn, count] of dead) tally(fn).dead += count;
    for (const [fn, count] of running) tally(fn).running += count;
    await Promise.all(
      [...tallies].map(async ([fn, entry]) => {
        if (entry.live <= entry.running) return;
        const oldest = await backend.jsm.direct
          .getMessage(this.#name, { next_by_subj: this.#subject('calls', fn), seq: 1 })
          .catch(() => null);
        if (oldest) entry.oldestQueuedAt = oldest.time.getTime();
      }),
    );
    return records.statsOf(tallies, Date.now());
  }

  /** Every consuming queue's deliveries in their handlers, per function (see #answerRunning). */
  async #runningEverywhere(backend: Backend): Promise<Map<string, number>> {
    const total = new Map<string, number>();
    try {
      const replies = await backend.nc.requestMany(this.#runningSubject(), '', {
        strategy: 'stall',
        stall: 50,
        maxWait: 1000,
      });
      for await (const reply of replies) {
        for (const [fn, n] of reply.json<[string, number][]>()) {
          total.set(fn, (total.get(fn) ?? 0) + n);
        }
      }
    } catch {
      // no worker consuming: none running
    }
    return total;
  }

  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    clearInterval(this.#sweeper);
    const backend = await this.#backend?.catch(() => undefined);
    // Close, not drain: nothing unsettled is acknowledged on the way out.
    await backend?.nc.close();
  }

  /** Resolves at once while connected; else waits for the connection to come back. */
  async #reachable(): Promise<void> {
    if (this.#online) return;
    await records.awaitReconnect('NATS', (up) => {
      this.#onReconnect.add(up);
      return () => this.#onReconnect.delete(up);
    });
  }

  /** Follows whether `nc` is connected (it reconnects on its own), for #reachable. */
  #follow(nc: NatsConnection): void {
    this.#online = true;
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') this.#online = false;
        if (status.type === 'reconnect') {
          this.#online = true;
          for (const back of this.#onReconnect) back();
        }
      }
    })().catch(() => undefined);
  }

  /** The connection and everything on the server, made once; tried again after a failure. */
  #connected(): Promise<Backend> {
    if (this.#closing.signal.aborted) return Promise.reject(new Error('the queue is closed'));
    this.#backend ??= this.#setUp().catch((error: unknown) => {
      this.#backend = undefined;
      // Not there yet (down, or a name that does not resolve): a 503 to retry, not a 500.
      if (error instanceof FnbusError) throw error;
      const code = (error as { code?: unknown }).code;
      throw new UnavailableError(
        `the NATS server of queue "${this.#name}" cannot be reached (${typeof code === 'string' ? code : 'no connection'})`,
        { cause: error },
      );
    });
    return this.#backend;
  }

  async #setUp(): Promise<Backend> {
    const nc = await connect({
      servers: this.#url.split(','),
      name: `fnbus-queue-${this.#name}`,
      // A restarted server is waited for, however long it takes.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      // Without it every request builds two Errors up front, for their stack traces: a fifth of
      // the hub's time per call under load.
      noAsyncTraces: true,
    });
    this.#follow(nc);
    try {
      const jsm = await jetstreamManager(nc);
      await this.#ensureWorkQueue(jsm);
      const js = jetstream(nc);
      const kvm = new Kvm(js);
      const bucket = (suffix: string, ttlMs?: number) =>
        kvm.create(`${this.#name}-${suffix}`, {
          history: 1,
          storage: StorageType.File,
          ...(ttlMs === undefined ? {} : { ttl: ttlMs }),
        });
      const [calls, finished, idempotency, letters] = await Promise.all([
        bucket('calls'),
        bucket('done', this.#retentionMs),
        bucket('keys', this.#idempotencyWindowMs),
        bucket('letters'),
      ]);
      const writer = new StreamWriter(nc);
      const live = new RecordBucket(calls, `${this.#name}-calls`, writer);
      const done = new RecordBucket(finished, `${this.#name}-done`, writer);
      const keys = new RecordBucket(idempotency, `${this.#name}-keys`, writer);
      const consumer = await js.consumers.get(this.#name, 'workers');
      await this.#purgeAcked(jsm).catch((error: unknown) => {
        this.#logger.debug({ err: error, queue: this.#name }, 'purging acknowledged calls failed');
      });
      if (this.#closing.signal.aborted) throw new Error('the queue is closed');
      // Closed by the client library itself (not by close()): the next call connects afresh.
      void nc.closed().then(() => {
        this.#backend = undefined;
      });
      return { nc, js, jsm, consumer, writer, live, done, keys, letters };
    } catch (error) {
      await nc.close();
      throw error;
    }
  }

  async #ensureWorkQueue(jsm: JetStreamManager): Promise<void> {
    // The cap: the server refuses a publish past it (discard new), atomically, at no cost.
    // Direct gets: stats read a function's oldest message.
    const limits = {
      max_msgs: this.#maxQueuedCalls,
      discard: DiscardPolicy.New,
      allow_direct: true,
    };
    try {
      const info = await jsm.streams.info(this.#name);
      if (
        info.config.max_msgs !== limits.max_msgs ||
        info.config.discard !== limits.discard ||
        !info.config.allow_direct
      ) {
        await jsm.streams.update(this.#name, limits);
      }
    } catch (error) {
      if (!isNotFound(error)) throw error;
      await jsm.streams
        .add({
          name: this.#name,
          subjects: [`${this.#name}.calls.>`],
          // A message leaves the stream when acknowledged: the stream is the backlog.
          retention: RetentionPolicy.Workqueue,
          storage: StorageType.File,
          ...limits,
        })
        .catch((addError: unknown) => {
          if (!/already in use/.test(String(addError))) throw addError;
        });
    }
    // Dead letters' requests, one message each on their function's subject.
    await jsm.streams.info(this.#deadStream()).catch(async (error: unknown) => {
      if (!isNotFound(error)) throw error;
      await jsm.streams
        .add({
          name: this.#deadStream(),
          subjects: [`${this.#name}.dead.>`],
          storage: StorageType.File,
        })
        .catch((addError: unknown) => {
          if (!/already in use/.test(String(addError))) throw addError;
        });
    });
    const config = {
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(this.#ackWaitMs),
      // Attempts are the worker's business (it dead-letters); the server never gives up.
      max_deliver: -1,
      // Calls waiting for a retry stay unacknowledged: no cap, or they would block new ones.
      max_ack_pending: -1,
    };
    try {
      const info = await jsm.consumers.info(this.#name, 'workers');
      if (info.config.ack_wait !== config.ack_wait) {
        await jsm.consumers.update(this.#name, 'workers', { ack_wait: config.ack_wait });
      }
    } catch (error) {
      if (!isNotFound(error)) throw error;
      await jsm.consumers.add(this.#name, { durable_name: 'workers', ...config });
    }
  }

  /**
   * Publishes the call's message; retried through a reconnect, deduplicated by its id. It carries
   * the record as written at `revision`, so that a worker can claim the call without reading it
   * first when nothing changed since.
   */
  async #publish(
    backend: Backend,
    call: StoredCall,
    revision: number,
    data: string,
    enqueued = false,
  ) {
    const subject = this.#subject('calls', call.function);
    const headed = headers();
    headed.set(callIdHeader, call.callId);
    headed.set('Nats-Msg-Id', call.messageId);
    if (enqueued) headed.set(queuedHeader, `${revision} ${msOf(call.enqueuedAt)}`);
    else headed.set(recordHeader, JSON.stringify({ revision, call }));
    try {
      await this.#persist(() => backend.writer.publish(subject, data, headed));
    } catch (error) {
      // The stream's max_msgs: the queue is at its cap.
      if (/maximum messages/i.test(String(error))) throw records.queueFull(this.#maxQueuedCalls);
      throw error;
    }
  }

  async #deliver(
    backend: Backend,
    msg: JsMsg,
    handle: seam.DeliveryHandler,
    held: Set<JsMsg>,
  ): Promise<void> {
    held.add(msg); // kept by consume's progress acks until settled
    try {
      const claim = await this.#claim(backend, msg);
      if (!claim) return;
      const fn = claim.call.function;
      this.#running.set(fn, (this.#running.get(fn) ?? 0) + 1);
      let settlement: seam.Settlement;
      try {
        settlement = await records.settlementOf(
          handle,
          claim.req,
          records.deliveryOf(claim.call.callId, progressOf(claim.call), claim.redelivered),
        );
      } finally {
        const left = (this.#running.get(fn) ?? 1) - 1;
        if (left > 0) this.#running.set(fn, left);
        else this.#running.delete(fn);
      }
      await this.#settle(backend, msg, claim, settlement);
    } catch (error) {
      if (this.#closing.signal.aborted) return;
      // Unsettled: the message comes back after the ack wait, and its record says what to do.
      this.#logger.warn({ err: error, queue: this.#name }, 'a delivery could not be handled');
    } finally {
      held.delete(msg);
    }
  }

  /**
   * Checks a delivered message against its call's record and marks the call `running`. Returns
   * undefined when there is nothing to run (the message was acknowledged or handed back).
   */
  async #claim(backend: Backend, msg: JsMsg): Promise<Claim | undefined> {
    const callId = msg.headers?.get(callIdHeader) ?? '';
    const messageId = msg.headers?.get('Nats-Msg-Id') ?? '';
    const key = callKey(callId);
    let req: QueueRequest;
    try {
      req = msg.json<QueueRequest>();
    } catch (error) {
      // Not one of ours: it can never run.
      this.#logger.error(
        { err: error, queue: this.#name, callId },
        'dropping an unreadable message',
      );
      await ackAck(msg);
      return undefined;
    }
    const fast = await this.#claimAsPublished(backend, msg, key, req);
    if (fast) return fast;
    for (;;) {
      const entry = callId ? await readCall(backend.live, key) : undefined;
      // No record (cancelled, finished, purged, or its enqueue failed) or a newer message
      // (redriven since): this copy is stale.
      if (!entry || entry.call.messageId !== messageId) {
        await ackAck(msg);
        return undefined;
      }
      const { call } = entry;
      if (call.state === 'dead-lettered') {
        await ackAck(msg); // dead-lettered by a worker that died before acknowledging
        return undefined;
      }
      if (call.state !== 'queued' && call.state !== 'running') {
        // Settled by a worker that died before moving the record and acknowledging.
        await this.#retire(backend, key, call, entry.revision);
        await ackAck(msg);
        return undefined;
      }
      if (call.state === 'running') {
        // Taken by a worker that died: unless it settled before dying (`done` is written first).
        const settled = await readCall(backend.done, key);
        if (settled) {
          await this.#retire(backend, key, settled.call, entry.revision);
          await ackAck(msg);
          return undefined;
        }
      }
      const dueInMs = call.nextAttemptAt ? Date.parse(call.nextAttemptAt) - Date.now() : 0;
      if (call.state === 'queued' && dueInMs > 50) {
        // Back early: the server lost a delayed nak (a restart). Wait out the rest.
        attempt(() => msg.nak(dueInMs));
        return undefined;
      }
      const running = withProgress(call, records.claimedCall(progressOf(call), Date.now()));
      const revision = await updateCall(backend.live, key, running, entry.revision);
      if (revision === undefined) continue; // cancelled or claimed meanwhile: look again
      return { key, revision, call: running, req, redelivered: call.state === 'running' };
    }
  }

  /**
   * The claim of a message whose call is as it was published (one write, no read): the record in
   * its header, at its revision. Undefined when the record changed since (a retry, a cancel,
   * another worker) or the header is missing: the caller reads the record and decides.
   */
  async #claimAsPublished(backend: Backend, msg: JsMsg, key: string, req: QueueRequest) {
    const published = publishedRecord(msg, req);
    if (!published) return undefined;
    const { revision, call } = published;
    if (call.state !== 'queued' || call.messageId !== msg.headers?.get('Nats-Msg-Id')) {
      return undefined;
    }
    const dueInMs = call.nextAttemptAt ? Date.parse(call.nextAttemptAt) - Date.now() : 0;
    if (dueInMs > 50) return undefined;
    const running = withProgress(call, records.claimedCall(progressOf(call), Date.now()));
    const claimed = await updateCall(backend.live, key, running, revision);
    if (claimed === undefined) return undefined;
    const claim: Claim = { key, revision: claimed, call: running, req, redelivered: false };
    return claim;
  }

  /** Carries out the handler's decision: the record first, then the message. */
  async #settle(backend: Backend, msg: JsMsg, claim: Claim, settlement: seam.Settlement) {
    const { call } = claim;
    const settled = withProgress(
      call,
      records.settledCall(progressOf(call), settlement, Date.now()),
    );
    if (settled.state === 'queued') {
      // Retry or defer: the record, then the message handed back for the delay.
      const revision = await this.#persist(() =>
        updateCall(backend.live, claim.key, settled, claim.revision),
      );
      // Undefined: someone else holds the call now (this delivery outlived its ack wait).
      const delayMs = Date.parse(settled.nextAttemptAt ?? '') - Date.parse(settled.updatedAt);
      if (revision !== undefined) backend.writer.later(() => msg.nak(Math.max(0, delayMs)));
      return;
    }
    if (settled.state === 'dead-lettered') {
      // A dead letter keeps the whole request, to be replayed by a redrive: in the letters
      // stream first, then the record that names it.
      settled.letterSeq = await this.#keepLetter(backend, claim.req, `${call.messageId}~letter`);
      settled.letter = seam.summarizeRequest(claim.req);
      const revision = await this.#persist(() =>
        updateCall(backend.live, claim.key, settled, claim.revision),
      );
      if (revision === undefined) {
        await this.#dropLetter(backend, { letterSeq: settled.letterSeq });
        return;
      }
    } else {
      // Straight to `done`: should this worker die before the record leaves `live`, the message
      // comes back, its record says `running`, and the claim finds the call in `done`.
      await this.#persist(() => this.#retire(backend, claim.key, settled, claim.revision));
    }
    // A lost ack is harmless: the message comes back, finds the call settled, and is dropped.
    backend.writer.later(() => msg.ack());
  }

  /** Moves a finished call from `live` to `done`, where it expires after the retention. */
  async #retire(backend: Backend, key: string, call: StoredCall, revision: number): Promise<void> {
    // `done` first: a reader looks in `live`, then `done`, and always finds the call.
    const finished = call.request === undefined ? call : { ...call, request: undefined };
    await backend.done.put(key, JSON.stringify(finished));
    await backend.live.delete(key, revision).catch((error: unknown) => {
      if (!isStale(error)) throw error;
    });
  }

  /**
   * One page of dead letters: the live bucket's records read in order from the cursor's
   * sequence (see #scanLive), at most `maxScanned` records and (past the first letter) `budget`
   * bytes. Records are small (requests are in the letters bucket), so a page reads little
   * besides its letters.
   */
  async #deadPage(
    backend: Backend,
    query: seam.DeadLetterQuery,
    budget: number,
  ): Promise<{ items: CallEntry[]; next?: string }> {
    const from = query.cursor ? records.decodeCursor(query.cursor, isSequence) : 1;
    const entries: CallEntry[] = [];
    let bytes = 0;
    let scanned = 0;
    const end = await this.#scanLive(backend, from, (entry, size) => {
      const { call } = entry;
      if (
        call.state === 'dead-lettered' &&
        (query.function === undefined || call.function === query.function)
      ) {
        if (entries.length > 0 && bytes + size > budget) return 'before'; // starts the next page
        bytes += size;
        entries.push(entry);
      }
      scanned += 1;
      return entries.length >= query.limit || scanned >= maxScanned ? 'after' : 'on';
    });
    return end === undefined
      ? { items: entries }
      : { items: entries, next: records.encodeCursor(end) };
  }

  /**
   * Reads the live bucket's records in stream order from sequence `from`, through an ordered
   * consumer, in batches, up to the last one written when the scan began (a snapshot's end:
   * later writes are for a later scan, and a scan always ends). `visit` says whether to go `on`,
   * or to stop `after` this record or `before` it. Returns the sequence to go on from, or
   * undefined when the end was reached. (KV's own history() can wait 30 s when a record is
   * overwritten while it reads.)
   */
  async #scanLive(
    backend: Backend,
    from: number,
    visit: (entry: CallEntry, size: number) => 'on' | 'after' | 'before',
  ): Promise<number | undefined> {
    const stream = `KV_${this.#name}-calls`;
    const prefix = `$KV.${this.#name}-calls.`;
    const { state } = await backend.jsm.streams.info(stream);
    const last = state.last_seq;
    if (state.messages === 0 || from > last) return undefined;
    const consumer = await backend.js.consumers.get(stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from,
    });
    let next = from;
    try {
      for (;;) {
        const messages = await consumer.fetch({ max_messages: 256, expires: 2000 });
        let got = 0;
        for await (const msg of messages) {
          got += 1;
          const atEnd = msg.seq >= last || msg.info.pending === 0;
          let verdict: 'on' | 'after' | 'before' = 'on';
          if (!msg.headers?.get('KV-Operation')) {
            const call = msg.json<StoredCall>();
            const key = msg.subject.slice(prefix.length);
            verdict = visit({ key, revision: msg.seq, call }, msg.data.length);
          }
          if (verdict === 'before') return msg.seq;
          next = msg.seq + 1;
          if (atEnd) return undefined;
          if (verdict === 'after') return next;
        }
        if (got === 0) return undefined; // nothing more came: the rest was deleted meanwhile
      }
    } finally {
      await consumer.delete().catch(() => false);
    }
  }

  /** The matching dead letters, a page at a time. */
  async *#deadBatches(
    backend: Backend,
    filter: seam.DeadLetterFilter,
  ): AsyncGenerator<CallEntry[]> {
    if (filter.callId !== undefined) {
      const entry = await readCall(backend.live, callKey(filter.callId));
      const { call } = entry ?? {};
      if (
        entry &&
        call?.state === 'dead-lettered' &&
        (filter.function === undefined || call.function === filter.function)
      ) {
        yield [entry];
      }
      return;
    }
    yield* records.everyDeadLetterPage(filter.function, (query) =>
      this.#deadPage(backend, query, Number.MAX_SAFE_INTEGER),
    );
  }

  /**
   * Runs `op` until it succeeds, retrying through a lost connection for a while. A write that
   * lost its compare-and-set answers undefined: someone else changed the record, and their
   * word stands.
   */
  async #persist<T>(op: () => Promise<T>): Promise<T | undefined> {
    const deadline = Date.now() + persistForMs;
    const backoff = new Backoff({ minWaitMs: 100, maxWaitMs: 2000 });
    for (;;) {
      try {
        return await op();
      } catch (error) {
        if (isStale(error)) return undefined;
        if (isPermanent(error) || this.#closing.signal.aborted || Date.now() > deadline) {
          throw error;
        }
        this.#logger.debug({ err: error, queue: this.#name }, 'retrying a write');
        await pause(backoff.next(), this.#closing.signal);
      }
    }
  }

  /**
   * Drops the work stream's messages below the consumer's ack floor: acknowledged, so gone from a
   * work queue, but a restart of an older nats-server (2.9) can leave some behind, and stats
   * count messages. Done when connecting and with each sweep.
   */
  async #purgeAcked(jsm: JetStreamManager): Promise<void> {
    const { ack_floor: floor } = await jsm.consumers.info(this.#name, 'workers');
    const { state } = await jsm.streams.info(this.#name);
    if (floor.stream_seq >= state.first_seq && state.messages > 0) {
      await jsm.streams.purge(this.#name, { seq: floor.stream_seq + 1 });
    }
  }

  /**
   * Deleting a record leaves a marker in the bucket's stream; markers would pile up, one per
   * call ever made, and slow every scan. Markers older than a minute go, each purged up to its
   * own sequence only, so that a record created again meanwhile stays.
   */
  async #sweep(): Promise<void> {
    if (!this.#backend) return; // never used: no need to connect for this
    try {
      const { js, jsm, writer } = await this.#backend;
      await this.#purgeAcked(jsm);
      const before = Date.now() - this.#markerAgeMs;
      const stream = `KV_${this.#name}-calls`;
      const { state } = await jsm.streams.info(stream);
      if (state.messages === 0) return;
      // Headers only (the records' bodies are not needed), in batches, up to the last message
      // written when the sweep began.
      const consumer = await js.consumers.get(stream, { headers_only: true });
      const removing: Promise<boolean>[] = [];
      try {
        let atEnd = false;
        while (!atEnd) {
          const messages = await consumer.fetch({ max_messages: 512, expires: 2000 });
          let got = 0;
          for await (const msg of messages) {
            got += 1;
            if (msg.headers?.get('KV-Operation') && msg.time.getTime() <= before) {
              // The marker's own message, by sequence: the bucket keeps one message a key, so
              // this is what a purge of the key up to the marker removed, at a fraction of a
              // purge's cost (which the server pays scanning the key's messages). A record
              // created again since has a later sequence and stays.
              removing.push(writer.deleteMessage(stream, msg.seq));
              if (removing.length >= 256) await Promise.all(removing.splice(0));
            }
            if (msg.seq >= state.last_seq || msg.info.pending === 0) {
              atEnd = true;
              break; // rather than wait for the fetch to expire
            }
          }
          if (got === 0) atEnd = true; // nothing more came: the rest was deleted meanwhile
        }
      } finally {
        await consumer.delete().catch(() => false);
      }
      await Promise.all(removing);
    } catch (error) {
      this.#logger.debug({ err: error, queue: this.#name }, 'sweeping deletion markers failed');
    }
  }
}

/** A call's record as enqueue writes it (and as a claim makes it again from `Fnbus-Queued`). */
function enqueuedRecord(callId: string, fn: string, messageId: string, now: number): StoredCall {
  return withProgress(
    { callId, function: fn, enqueuedAt: isoOf(now), messageId },
    records.queuedCall(now),
  );
}

/**
 * The record a message was published with, and its revision: from `Fnbus-Queued` (a call's
 * first message) or `Fnbus-Record` (a redriven call's, or any message of an older fnbus).
 */
function publishedRecord(
  msg: JsMsg,
  req: QueueRequest,
): { revision: number; call: StoredCall } | undefined {
  const queued = msg.headers?.get(queuedHeader);
  if (queued) {
    const [revision, at] = queued.split(' ').map(Number);
    const callId = msg.headers?.get(callIdHeader);
    const messageId = msg.headers?.get('Nats-Msg-Id');
    if (!isSequence(revision) || !isSequence(at) || !callId || !messageId) return undefined;
    return { revision, call: enqueuedRecord(callId, req.Function, messageId, at) };
  }
  const header = msg.headers?.get(recordHeader);
  if (!header) return undefined;
  try {
    const published = JSON.parse(header) as { revision: number; call?: StoredCall };
    return published.call && { revision: published.revision, call: published.call };
  } catch {
    return undefined;
  }
}

/** The server answered no, or the request itself is wrong: trying again cannot help. */
function isPermanent(error: unknown): boolean {
  return [
    JetStreamApiError,
    InvalidArgumentError,
    InvalidSubjectError,
    ClosedConnectionError,
    PermissionViolationError,
    AuthorizationError,
  ].some((type) => error instanceof type);
}

/**
 * What a failed enqueue means to the caller: JetStream out of storage is a 507, a server that
 * cannot be reached (or a queue closing) a 503; anything else stays as it is.
 */
function serverError(error: unknown): unknown {
  if (error instanceof FnbusError) return error;
  if (
    error instanceof JetStreamApiError &&
    (error.code === insufficientResources || /maximum bytes|insufficient/i.test(error.message))
  ) {
    return new InsufficientStorageError('the queue cannot store calls: NATS has no room left', {
      cause: error,
    });
  }
  const unreachable = [
    ConnectionError,
    ClosedConnectionError,
    DrainingConnectionError,
    NoRespondersError,
    RequestError,
    TimeoutError,
  ].some((type) => error instanceof type);
  if (unreachable || (error instanceof Error && error.message === 'the queue is closed')) {
    return new UnavailableError('the queue (NATS) cannot be reached', { cause: error });
  }
  return error;
}

/** JetStream's "insufficient resources": the server's storage limit is reached. */
const insufficientResources = 10047;

function isNotFound(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamNotFound ||
      error.code === JetStreamApiCodes.ConsumerNotFound)
  );
}

/** Acknowledges and waits for the server to confirm; a failure is left to redelivery. */
async function ackAck(msg: JsMsg): Promise<void> {
  await msg.ackAck().catch(() => false);
}

/** Sends an ack-like message; on a closed connection there is nobody to tell. */
function attempt(send: () => void): void {
  try {
    send();
  } catch {
    // the connection is closed: the server redelivers after the ack wait
  }
}

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal }).catch(() => {});
}
