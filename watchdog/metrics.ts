import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The watchdog's Prometheus metrics, named as OpenFaaS's watchdogs name them, served on a port of
 * their own. Label children are cached: prom-client would otherwise hash the labels every call.
 */
export class WatchdogMetrics {
  readonly registry = new Registry();
  readonly #requests = new Counter({
    name: 'http_requests_total',
    help: 'Total number of HTTP requests by status code and method.',
    labelNames: ['code', 'method'],
    registers: [this.registry],
  });
  readonly #duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Seconds spent serving HTTP requests.',
    labelNames: ['code', 'method'],
    registers: [this.registry],
  });
  /** `inFlight` is read when scraped, so the hot path only keeps a plain counter. */
  constructor(inFlight: () => number) {
    new Gauge({
      name: 'http_requests_in_flight',
      help: 'Current number of requests being served.',
      registers: [this.registry],
      collect() {
        this.set(inFlight());
      },
    });
  }

  readonly #children = new Map<
    string,
    { count: Counter.Internal; time: Histogram.Internal<'code' | 'method'> }
  >();

  observe(method: string, code: number, seconds: number): void {
    const key = `${code} ${method}`;
    let child = this.#children.get(key);
    if (!child) {
      const labels = { code: String(code), method: method.toLowerCase() };
      child = { count: this.#requests.labels(labels), time: this.#duration.labels(labels) };
      this.#children.set(key, child);
    }
    child.count.inc();
    child.time.observe(seconds);
  }
}
