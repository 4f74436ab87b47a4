import { Counter, Gauge, type Registry } from 'prom-client';
import type { Queue } from '../core/queue.js';

type Outcome = 'success' | 'failure' | 'retry' | 'dead-letter';

/**
 * The async path's Prometheus metrics, with OpenFaaS Pro's queue-worker names where it has one
 * (`queue_worker_pending_messages`, `queue_worker_messages_processed_total`,
 * `queue_worker_function_invocation_inflight`). Counts of what waits come from the queue itself
 * at each scrape, so every worker and gateway sharing a backend report the same depth.
 */
export class WorkerMetrics {
  readonly #processed: Counter<'function_name' | 'outcome'>;
  readonly #retries: Counter<'function_name'>;
  readonly #deadLetters: Counter<'function_name'>;
  readonly #callbacks: Counter<'function_name' | 'delivered'>;
  readonly #inFlight: Gauge<'function_name'>;
  /** Each function's series, looked up once: labels() hashes its arguments on every call. */
  readonly #series = new Map<
    string,
    {
      inFlight: ReturnType<Gauge['labels']>;
      processed: Map<Outcome, ReturnType<Counter['labels']>>;
    }
  >();

  constructor(registry: Registry, queue: Queue) {
    const registers = [registry];
    this.#processed = new Counter({
      name: 'queue_worker_messages_processed_total',
      help: 'Attempts of async calls run, by outcome: success, failure, retry, dead-letter',
      labelNames: ['function_name', 'outcome'],
      registers,
    });
    this.#retries = new Counter({
      name: 'queue_worker_retries_total',
      help: 'Async calls scheduled to run again after a retryable answer',
      labelNames: ['function_name'],
      registers,
    });
    this.#deadLetters = new Counter({
      name: 'queue_worker_dead_letters_total',
      help: 'Async calls given up and kept as dead letters',
      labelNames: ['function_name'],
      registers,
    });
    this.#callbacks = new Counter({
      name: 'queue_worker_callbacks_total',
      help: 'Callbacks posted, by whether the receiver took them',
      labelNames: ['function_name', 'delivered'],
      registers,
    });
    this.#inFlight = new Gauge({
      name: 'queue_worker_function_invocation_inflight',
      help: 'Async calls running now, in this worker',
      labelNames: ['function_name'],
      registers,
    });
    // One read of the queue per scrape feeds the four depth gauges.
    let snapshot: Promise<Awaited<ReturnType<Queue['stats']>>> | undefined;
    const depth = (name: string, help: string, pick: (s: DepthStats) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['function_name'],
        registers,
        async collect() {
          snapshot ??= queue.stats().finally(() => setImmediate(() => (snapshot = undefined)));
          this.reset();
          for (const [fn, stats] of Object.entries(await snapshot)) {
            this.labels(fn).set(pick(stats));
          }
        },
      });
    depth('queue_worker_pending_messages', 'Async calls waiting to run', (s) => s.queued);
    depth(
      'queue_worker_running_messages',
      'Async calls running, in every worker',
      (s) => s.running,
    );
    depth('queue_worker_dead_letter_messages', 'Dead letters kept', (s) => s.deadLettered);
    depth(
      'queue_worker_oldest_pending_seconds',
      'Age of the oldest async call waiting to run',
      (s) => s.oldestQueuedAgeMs / 1000,
    );
  }

  started(fn: string): void {
    this.#seriesOf(fn).inFlight.inc();
  }

  finished(fn: string, outcome: Outcome): void {
    const series = this.#seriesOf(fn);
    series.inFlight.dec();
    let processed = series.processed.get(outcome);
    if (!processed) {
      processed = this.#processed.labels(fn, outcome);
      series.processed.set(outcome, processed);
    }
    processed.inc();
    if (outcome === 'retry') this.#retries.labels(fn).inc();
  }

  #seriesOf(fn: string) {
    let series = this.#series.get(fn);
    if (!series) {
      series = { inFlight: this.#inFlight.labels(fn), processed: new Map() };
      this.#series.set(fn, series);
    }
    return series;
  }

  deadLettered(fn: string): void {
    this.#deadLetters.labels(fn).inc();
  }

  callback(fn: string, delivered: boolean): void {
    this.#callbacks.labels(fn, String(delivered)).inc();
  }
}

type DepthStats = Awaited<ReturnType<Queue['stats']>>[string];
