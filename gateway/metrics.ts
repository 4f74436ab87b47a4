import { Counter, Gauge, Histogram, Registry } from 'prom-client';

type Labels = 'function_name' | 'code';

/** The series of one function and one status code, looked up once and kept. */
interface CodeSeries {
  total: ReturnType<Counter<Labels>['labels']>;
  seconds: ReturnType<Histogram<Labels>['labels']>;
}

/** The series of one function (`name.namespace`), kept so a call does not rebuild them. */
export class FunctionSeries {
  readonly #metrics: GatewayMetrics;
  readonly #name: string;
  readonly #started: ReturnType<Counter<'function_name'>['labels']>;
  readonly #byCode = new Map<number, CodeSeries>();
  /** Calls started and not yet over: the idler never scales a function with one to zero. */
  #inFlight = 0;
  /** Calls answered 200, as the autoscaler's rule counts them (`code="200"`). */
  #succeeded = 0;
  /** When a call last started or ended (Date.now()), for the idler. */
  #lastCallAt = 0;

  constructor(metrics: GatewayMetrics, name: string) {
    this.#metrics = metrics;
    this.#name = name;
    this.#started = metrics.started.labels(name);
  }

  /** A call reached a replica. */
  start(): void {
    this.#started.inc();
    this.#inFlight += 1;
    this.#lastCallAt = Date.now();
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get succeeded(): number {
    return this.#succeeded;
  }

  get lastCallAt(): number {
    return this.#lastCallAt;
  }

  /** A call is over, with the status the caller got. */
  finish(code: number, seconds: number): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    this.#lastCallAt = Date.now();
    if (code === 200) this.#succeeded += 1;
    let series = this.#byCode.get(code);
    if (!series) {
      const label = String(code);
      series = {
        total: this.#metrics.invocations.labels(this.#name, label),
        seconds: this.#metrics.seconds.labels(this.#name, label),
      };
      this.#byCode.set(code, series);
    }
    series.total.inc();
    series.seconds.observe(seconds);
  }
}

/**
 * The gateway's Prometheus metrics, with OpenFaaS's names (faas gateway/metrics/metrics.go), in a
 * registry of their own (not prom-client's global one, so two gateways in a process do not
 * collide). `gateway_function_invocation_total` is also where `invocationCount` comes from.
 */
export class GatewayMetrics {
  readonly registry: Registry;
  readonly invocations: Counter<Labels>;
  readonly seconds: Histogram<Labels>;
  readonly started: Counter<'function_name'>;
  /** fnbus's own: each scaling by the autoscaler or the idler, by its cause. */
  readonly #scalings: Counter<'function_name' | 'cause'>;
  readonly #functions = new Map<string, FunctionSeries>();
  /** Calls held for a replica (scale from zero), by function: not yet started, not to be idled. */
  readonly #waiting = new Map<string, number>();

  /** `desiredReplicas` is asked at each scrape, for `gateway_service_count`. */
  constructor(registry: Registry | undefined, desiredReplicas: () => Promise<Map<string, number>>) {
    this.registry = registry ?? new Registry();
    this.invocations = new Counter({
      name: 'gateway_function_invocation_total',
      help: 'Function metrics',
      labelNames: ['function_name', 'code'],
      registers: [this.registry],
    });
    this.seconds = new Histogram({
      name: 'gateway_functions_seconds',
      help: 'Function time taken',
      labelNames: ['function_name', 'code'],
      registers: [this.registry],
    });
    this.started = new Counter({
      name: 'gateway_function_invocation_started',
      help: 'The total number of function HTTP requests started.',
      labelNames: ['function_name'],
      registers: [this.registry],
    });
    this.#scalings = new Counter({
      name: 'fnbus_autoscaler_scalings_total',
      help: 'Scalings by the gateway: load (calls over the rate), load_resolved (back to the minimum), idle (to zero)',
      labelNames: ['function_name', 'cause'],
      registers: [this.registry],
    });
    new Gauge({
      name: 'gateway_service_count',
      help: 'Current count of replicas for function',
      labelNames: ['function_name'],
      registers: [this.registry],
      async collect() {
        const replicas = await desiredReplicas();
        this.reset();
        for (const [name, count] of replicas) this.labels(name).set(count);
      },
    });
  }

  /** The series of one function (`name.namespace`); keep it for the length of a call. */
  function(name: string): FunctionSeries {
    let series = this.#functions.get(name);
    if (!series) {
      series = new FunctionSeries(this, name);
      this.#functions.set(name, series);
    }
    return series;
  }

  /** The autoscaler or the idler scaled `name` (`name.namespace`). */
  scaled(name: string, cause: 'load' | 'load_resolved' | 'idle'): void {
    this.#scalings.labels(name, cause).inc();
  }

  /** A call waits for a replica of `name` (+1), or is done waiting (-1). */
  waiting(name: string, change: 1 | -1): void {
    const count = (this.#waiting.get(name) ?? 0) + change;
    if (count > 0) this.#waiting.set(name, count);
    else this.#waiting.delete(name);
  }

  /** Calls waiting for a replica of `name` now. */
  waitingFor(name: string): number {
    return this.#waiting.get(name) ?? 0;
  }

  /** The series of one function if it has had a call; never makes one. */
  peek(name: string): FunctionSeries | undefined {
    return this.#functions.get(name);
  }

  /** Finished calls per function (all codes), from `gateway_function_invocation_total`. */
  async invocationCounts(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const { labels, value } of (await this.invocations.get()).values) {
      const name = String(labels.function_name);
      counts.set(name, (counts.get(name) ?? 0) + value);
    }
    return counts;
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
