import { setFlagsFromString } from 'node:v8';
import { Worker, type MessagePort, type TransferListItem } from 'node:worker_threads';
import type { Logger } from '../core/logger.js';

/**
 * What the hub's main thread says to a thread of its own (the queue worker, the connectors):
 * `metrics` (answer with yours), `stop` (finish what is in flight, close, answer `stopped`).
 */
export type ToHubThread = { type: 'metrics'; id: number } | { type: 'stop' };
export type FromHubThread<M> =
  { type: 'ready' } | { type: 'metrics'; id: number; metrics: M } | { type: 'stopped' };

/** One thread of the hub, as its supervisor (cli/worker-supervisor.ts) drives it. */
export interface HubThread<M = string> {
  /** Its metrics; may never answer if the thread is stuck. */
  metrics(): Promise<M>;
  /** Asks it to finish what it has in flight and close; resolves once it has ended. */
  stop(): Promise<void>;
  /** Ends it at once: what it had in flight is delivered again later (at least once). */
  terminate(): Promise<void>;
  /** Resolves when the thread ends, with what ended it (an error, or its exit code). */
  readonly ended: Promise<unknown>;
}

/**
 * A young generation of 16 MB semi-spaces (V8 sizes it as three) for a hub thread alone, where
 * the main thread keeps 2 MB (bin/fnbus): such a thread allocates a call's request, answer and
 * record for every call, and scavenged 12-18% of its time with 2 MB. It grows only while calls
 * flow.
 */
const threadYoungGenerationMb = 48;

export interface HubThreadOptions {
  /** `queue worker`, `connectors`: in logs. */
  name: string;
  workerData: unknown;
  transferList?: readonly TransferListItem[];
  logger: Logger;
  /** Once the thread has ended, whatever ended it. */
  onEnded?: () => void;
}

/**
 * Starts the module `entry` as a thread of the hub; resolves once it said `ready` (rejects if it
 * ends first). Its side of the talk is answerHub().
 */
export async function startHubThread<M>(
  entry: URL,
  options: HubThreadOptions,
): Promise<HubThread<M>> {
  // bin/fnbus's --max-semi-space-size=2 (for the main thread) would also cap this thread's young
  // generation, whatever resourceLimits says: cleared once the main heap is made, so the limit
  // below applies (V8 reads the flag when a thread's heap is created).
  setFlagsFromString('--max-semi-space-size=0');
  const thread = new Worker(entry, {
    workerData: options.workerData,
    transferList: options.transferList ? [...options.transferList] : [],
    resourceLimits: { maxYoungGenerationSizeMb: threadYoungGenerationMb },
  });
  const answers = new Map<number, (metrics: M | undefined) => void>();
  let nextId = 1;
  let failure: unknown;
  thread.on('error', (error) => {
    failure = error;
  });
  const ended = new Promise<unknown>((resolve) => {
    thread.once('exit', (code) => {
      options.onEnded?.();
      for (const answer of answers.values()) answer(undefined);
      resolve(failure ?? code);
    });
  });
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => (stopped = resolve));
  void ended.then(() => stopped());
  thread.on('message', (message: FromHubThread<M>) => {
    if (message.type === 'metrics') answers.get(message.id)?.(message.metrics);
    if (message.type === 'stopped') stopped();
  });
  await new Promise<void>((resolve, reject) => {
    thread.once('message', () => resolve());
    void ended.then((why) =>
      reject(why instanceof Error ? why : new Error(`the thread ended (${String(why)})`)),
    );
  });
  options.logger.debug(`${options.name} thread started`);
  return {
    ended,
    metrics() {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        answers.set(id, (metrics) => {
          answers.delete(id);
          if (metrics === undefined) reject(new Error('the thread ended'));
          else resolve(metrics);
        });
        thread.postMessage({ type: 'metrics', id } satisfies ToHubThread);
      });
    },
    async stop() {
      thread.postMessage({ type: 'stop' } satisfies ToHubThread);
      await done;
    },
    async terminate() {
      await thread.terminate();
    },
  };
}

/**
 * The thread's side: answers `metrics` with `metrics()`, and aborts the returned signal at
 * `stop`. Says `ready` now; `stopped(port)` once closed.
 */
export function answerHub<M>(port: MessagePort, metrics: () => Promise<M>): AbortSignal {
  const stop = new AbortController();
  port.on('message', (message: ToHubThread) => {
    if (message.type === 'stop') stop.abort();
    else if (message.type === 'metrics') {
      void metrics().then((value) => {
        port.postMessage({
          type: 'metrics',
          id: message.id,
          metrics: value,
        } satisfies FromHubThread<M>);
      });
    }
  });
  port.postMessage({ type: 'ready' } satisfies FromHubThread<M>);
  return stop.signal;
}

/** The thread's last word: it has closed. */
export function stopped(port: MessagePort): void {
  port.postMessage({ type: 'stopped' } satisfies FromHubThread<never>);
  port.close();
}
