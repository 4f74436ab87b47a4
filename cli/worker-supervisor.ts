import { setFlagsFromString } from 'node:v8';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { Logger } from '../core/logger.js';
import { Backoff } from '../core/retry-policy.js';
import type { FromWorkerThread, ToWorkerThread, WorkerThreadData } from './queue-worker-thread.js';
import type { ReplicaLeases } from './replica-leases.js';

/** The worker thread's young generation (V8 sizes it as three semi-spaces). */
const workerYoungGenerationMb = 48;

/** How long stop() waits for a terminated thread to be gone. */
const terminateWaitMs = 2000;

/** One queue worker thread (cli/queue-worker-thread.ts), as the supervisor drives it. */
export interface WorkerThread {
  /** Its Prometheus text; may never answer if the thread is stuck. */
  metrics(): Promise<string>;
  /** Asks it to finish its calls in flight and close; resolves once it has ended. */
  stop(): Promise<void>;
  /** Ends it at once: its calls in flight are delivered again later (at least once). */
  terminate(): Promise<void>;
  /** Resolves when the thread ends, with what ended it (an error, or its exit code). */
  readonly ended: Promise<unknown>;
}

export interface SupervisorOptions {
  logger: Logger;
  /** The first wait before a restart; it doubles (jittered) with each failure in a row. Default 500 ms. */
  firstRestartMs?: number;
  /** The longest wait before a restart. Default 15 s. */
  maxRestartMs?: number;
  /** A thread that ran this long before it ended starts the waits over. Default 30 s. */
  steadyMs?: number;
  /** How long /metrics waits for the thread's part before answering without it. Default 2 s. */
  metricsTimeoutMs?: number;
}

/**
 * Keeps the hub's queue worker thread running: a thread that ends on its own (SQLITE_FULL, a
 * locked or damaged queue file, any uncaught error) is started again after a wait that doubles
 * (jittered) up to a cap. Meanwhile `health()` says why the worker is down, for `/healthz`; `metrics()`
 * never waits on a thread that is gone or stuck; `stop()` is bounded.
 */
export class WorkerSupervisor {
  readonly #launch: () => Promise<WorkerThread>;
  readonly #logger: Logger;
  /** The wait before a restart, longer with each failure in a row. */
  readonly #restarts: Backoff;
  readonly #steadyMs: number;
  readonly #metricsTimeoutMs: number;
  #thread: WorkerThread | undefined;
  #starting: Promise<void> | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  /** Why the worker is down, while it is. */
  #down: string | undefined;
  #stopping = false;

  constructor(launch: () => Promise<WorkerThread>, options: SupervisorOptions) {
    this.#launch = launch;
    this.#logger = options.logger;
    this.#restarts = new Backoff({
      minWaitMs: options.firstRestartMs ?? 500,
      maxWaitMs: options.maxRestartMs ?? 15_000,
    });
    this.#steadyMs = options.steadyMs ?? 30_000;
    this.#metricsTimeoutMs = options.metricsTimeoutMs ?? 2000;
  }

  /**
   * Starts the thread unless it runs, is starting, or waits to be restarted (the wait stands:
   * new work does not shorten it). Resolves once it runs or failed to start (restart scheduled).
   */
  start(): Promise<void> {
    if (this.#stopping || this.#thread || this.#restartTimer) return Promise.resolve();
    this.#starting ??= this.#start().finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  /** Undefined while the worker is fine (or not needed yet); else why not, in a few words. */
  health(): string | undefined {
    return this.#stopping ? 'stopping' : this.#down;
  }

  /** The thread's Prometheus text; empty when it is down, or does not answer in time. */
  async metrics(): Promise<string> {
    const thread = this.#thread;
    if (!thread) return '';
    const text = await within(thread.metrics(), this.#metricsTimeoutMs);
    return typeof text === 'string' ? text : '';
  }

  /**
   * Stops the worker: its calls in flight finish, for `withinMs` at most; then the thread is
   * terminated (those calls run again at the next start). No restart after this.
   */
  async stop(withinMs: number): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    const deadline = Date.now() + withinMs;
    const left = () => Math.max(0, deadline - Date.now());
    if (this.#starting) await within(this.#starting, left());
    const thread = this.#thread;
    if (!thread) return;
    if ((await within(thread.stop(), left())) === timedOut) {
      this.#logger.warn(
        { timeoutMs: withinMs },
        'the queue worker did not stop in time: its calls in flight will run again',
      );
    }
    // Bounded too: a thread inside a long native call ends only once it returns.
    await within(thread.terminate(), terminateWaitMs);
    this.#thread = undefined;
  }

  async #start(): Promise<void> {
    let thread: WorkerThread;
    try {
      thread = await this.#launch();
    } catch (error) {
      this.#failed(error, 0);
      return;
    }
    if (this.#stopping) {
      await thread.terminate();
      return;
    }
    const startedAt = Date.now();
    this.#thread = thread;
    if (this.#down) this.#logger.info('the queue worker is running again');
    this.#down = undefined;
    void thread.ended.then((why) => {
      if (this.#thread !== thread) return;
      this.#thread = undefined;
      if (!this.#stopping) this.#failed(why, Date.now() - startedAt);
    });
  }

  /** The thread did not start, or ended on its own: down, and started again after a wait. */
  #failed(why: unknown, ranMs: number): void {
    if (ranMs >= this.#steadyMs) this.#restarts.reset();
    const waitMs = this.#restarts.next();
    this.#down = `queue worker down (${shortReason(why)}), restarting`;
    this.#logger.error(
      { err: why, restartInMs: waitMs, failures: this.#restarts.failures },
      'the queue worker thread stopped',
    );
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      void this.start();
    }, waitMs);
  }
}

export const timedOut = Symbol('timed out');

/** `work`'s value, or `timedOut` if it takes longer than `ms` (a failure counts as done). */
export async function within<T>(
  work: Promise<T>,
  ms: number,
): Promise<T | undefined | typeof timedOut> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof timedOut>((resolve) => {
    timer = setTimeout(resolve, ms, timedOut);
  });
  try {
    return await Promise.race([work.catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An error's code (SQLITE_FULL...) or name; an exit code otherwise. No message: no paths. (An
 * error of a class of its own, such as SqliteError, crosses from the thread as a plain object.)
 */
function shortReason(why: unknown): string {
  if (typeof why === 'number') return `exit code ${why}`;
  if (typeof why !== 'object' || why === null) return 'ended';
  const { code, name } = why as { code?: unknown; name?: unknown };
  if (typeof code === 'string') return code;
  return typeof name === 'string' ? name : 'ended';
}

/**
 * Starts cli/queue-worker-thread.ts; resolves once its queue is open. With `leases`, the thread
 * calls the hub's replicas directly, leased over a channel of its own; whatever it holds when it
 * ends is released.
 */
export async function startWorkerThread(
  data: Omit<WorkerThreadData, 'leases'>,
  logger: Logger,
  leases?: ReplicaLeases,
): Promise<WorkerThread> {
  const channel = leases && new MessageChannel();
  // bin/fnbus's --max-semi-space-size=2 (for the main thread) would also cap this thread's young
  // generation, whatever resourceLimits says: cleared once the main heap is made, so the limit
  // below applies (V8 reads the flag when a thread's heap is created).
  setFlagsFromString('--max-semi-space-size=0');
  const thread = new Worker(new URL('./queue-worker-thread.js', import.meta.url), {
    workerData: { ...data, leases: channel?.port2 } satisfies WorkerThreadData,
    transferList: channel ? [channel.port2] : [],
    // A young generation of 16 MB semi-spaces for this thread alone, where the hub's own thread
    // keeps 2 MB (bin/fnbus): the worker allocates a call's record, request and answer for each
    // call, and scavenged 12% of its time with 2 MB. It grows only while calls flow.
    resourceLimits: { maxYoungGenerationSizeMb: workerYoungGenerationMb },
  });
  const releaseLeases = channel && leases.serve(channel.port1);
  const answers = new Map<number, (text: string) => void>();
  let nextId = 1;
  let failure: unknown;
  thread.on('error', (error) => {
    failure = error;
  });
  const ended = new Promise<unknown>((resolve) => {
    thread.once('exit', (code) => {
      releaseLeases?.();
      for (const answer of answers.values()) answer('');
      resolve(failure ?? code);
    });
  });
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => (stopped = resolve));
  void ended.then(() => stopped());
  thread.on('message', (message: FromWorkerThread) => {
    if (message.type === 'metrics') answers.get(message.id)?.(message.text);
    if (message.type === 'stopped') stopped();
  });
  await new Promise<void>((resolve, reject) => {
    thread.once('message', () => resolve());
    void ended.then((why) =>
      reject(why instanceof Error ? why : new Error(`the thread ended (${String(why)})`)),
    );
  });
  logger.debug('queue worker thread started');
  return {
    ended,
    metrics() {
      const id = nextId++;
      return new Promise((resolve) => {
        answers.set(id, (text) => {
          answers.delete(id);
          resolve(text);
        });
        thread.postMessage({ type: 'metrics', id } satisfies ToWorkerThread);
      });
    },
    async stop() {
      thread.postMessage({ type: 'stop' } satisfies ToWorkerThread);
      await done;
    },
    async terminate() {
      await thread.terminate();
    },
  };
}
