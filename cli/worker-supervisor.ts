import { MessageChannel } from 'node:worker_threads';
import type { Logger } from '../core/logger.js';
import { Backoff } from '../core/retry-policy.js';
import { startHubThread, type HubThread } from './hub-thread.js';
import type { ConnectorThreadData, ConnectorThreadMetrics } from './connector-thread.js';
import type { WorkerThreadData } from './queue-worker-thread.js';
import type { ReplicaLeases } from './replica-leases.js';

/** How long stop() waits for a terminated thread to be gone. */
const terminateWaitMs = 2000;

export interface SupervisorOptions {
  logger: Logger;
  /** What the thread runs, in logs and health: `queue worker` (the default), `connectors`. */
  name?: string;
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
 * Keeps one of the hub's threads running (its queue worker, its connectors): a thread that ends
 * on its own (SQLITE_FULL, a locked or damaged queue file, any uncaught error) is started again
 * after a wait that doubles (jittered) up to a cap. Meanwhile `health()` says why it is down, for
 * `/healthz`; `metrics()` never waits on a thread that is gone or stuck; `stop()` is bounded.
 */
export class WorkerSupervisor<M = string> {
  readonly #launch: () => Promise<HubThread<M>>;
  readonly #logger: Logger;
  readonly #name: string;
  /** The wait before a restart, longer with each failure in a row. */
  readonly #restarts: Backoff;
  readonly #steadyMs: number;
  readonly #metricsTimeoutMs: number;
  #thread: HubThread<M> | undefined;
  #starting: Promise<void> | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  /** Why the worker is down, while it is. */
  #down: string | undefined;
  #stopping = false;

  constructor(launch: () => Promise<HubThread<M>>, options: SupervisorOptions) {
    this.#launch = launch;
    this.#logger = options.logger;
    this.#name = options.name ?? 'queue worker';
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
    this.#starting ??= this.#start(false).finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  /**
   * The first start of a thread that must run for the command to: its failure rejects (the
   * command says why and ends), with no restart. Later failures restart it as start()'s do.
   */
  startOrFail(): Promise<void> {
    if (this.#stopping || this.#thread || this.#restartTimer) return Promise.resolve();
    this.#starting ??= this.#start(true).finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  /** Undefined while the thread is fine (or not needed yet); else why not, in a few words. */
  health(): string | undefined {
    return this.#stopping ? 'stopping' : this.#down;
  }

  /** The thread's metrics; undefined when it is down, or does not answer in time. */
  async metrics(): Promise<M | undefined> {
    const thread = this.#thread;
    if (!thread) return undefined;
    const metrics = await within(thread.metrics(), this.#metricsTimeoutMs);
    return metrics === timedOut ? undefined : metrics;
  }

  /**
   * Stops the thread: its calls in flight finish, for `withinMs` at most; then it is terminated
   * (those calls run again: the queue's at the next start, a broker's by redelivery). No restart
   * after this.
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
        `the ${this.#name} did not stop in time: its calls in flight will run again`,
      );
    }
    // Bounded too: a thread inside a long native call ends only once it returns.
    await within(thread.terminate(), terminateWaitMs);
    this.#thread = undefined;
  }

  async #start(failFast: boolean): Promise<void> {
    let thread: HubThread<M>;
    try {
      thread = await this.#launch();
    } catch (error) {
      if (failFast) throw error;
      this.#failed(error, 0);
      return;
    }
    if (this.#stopping) {
      await thread.terminate();
      return;
    }
    const startedAt = Date.now();
    this.#thread = thread;
    if (this.#down) this.#logger.info(`the ${this.#name} is running again`);
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
    this.#down = `${this.#name} down (${shortReason(why)}), restarting`;
    this.#logger.error(
      { err: why, restartInMs: waitMs, failures: this.#restarts.failures },
      `the ${this.#name} thread stopped`,
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
export function startWorkerThread(
  data: Omit<WorkerThreadData, 'leases'>,
  logger: Logger,
  leases?: ReplicaLeases,
): Promise<HubThread> {
  const channel = leases && new MessageChannel();
  const releaseLeases = channel && leases.serve(channel.port1);
  return startHubThread<string>(new URL('./queue-worker-thread.js', import.meta.url), {
    name: 'queue worker',
    workerData: { ...data, leases: channel?.port2 } satisfies WorkerThreadData,
    transferList: channel ? [channel.port2] : [],
    logger,
    onEnded: () => releaseLeases?.(),
  });
}

/**
 * Starts cli/connector-thread.ts with the broker connectors named in `data`; resolves once they
 * run (rejects with why they could not start). With `leases`, each connector calls the hub's
 * replicas directly, leased over a channel of its own; whatever they hold when the thread ends is
 * released.
 */
export function startConnectorThread(
  data: Omit<ConnectorThreadData, 'leases'>,
  logger: Logger,
  leases?: ReplicaLeases,
): Promise<HubThread<ConnectorThreadMetrics>> {
  const channels = leases ? data.names.map(() => new MessageChannel()) : [];
  const releases = leases ? channels.map((channel) => leases.serve(channel.port1)) : [];
  const ends = channels.map((channel) => channel.port2);
  return startHubThread<ConnectorThreadMetrics>(new URL('./connector-thread.js', import.meta.url), {
    name: 'connectors',
    workerData: { ...data, ...(leases ? { leases: ends } : {}) } satisfies ConnectorThreadData,
    transferList: ends,
    logger,
    onEnded: () => releases.forEach((release) => release()),
  });
}
