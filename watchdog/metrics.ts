/**
 * The watchdog's Prometheus metrics, named as OpenFaaS's watchdogs name them:
 * `http_requests_total{code,method}`, `http_request_duration_seconds{code,method}` (Prometheus'
 * default buckets) and `http_requests_in_flight`. Three fixed metrics in the text exposition
 * format: written here rather than with prom-client, which costs ~10 MB of resident memory in
 * every function and a label hash on every call.
 */
const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Series {
  labels: string;
  count: number;
  sum: number;
  /** Per-bucket counts (not cumulative; summed when scraped). */
  inBucket: number[];
}

export class WatchdogMetrics {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  readonly #series = new Map<string, Series>();
  readonly #inFlight: () => number;

  /** `inFlight` is read when scraped, so the hot path only keeps a plain counter. */
  constructor(inFlight: () => number) {
    this.#inFlight = inFlight;
  }

  observe(method: string, code: number, seconds: number): void {
    const key = `${code} ${method}`;
    let series = this.#series.get(key);
    if (!series) {
      const labels = `code="${code}",method="${method.toLowerCase().replace(/["\\\n]/g, '')}"`;
      series = { labels, count: 0, sum: 0, inBucket: new Array<number>(buckets.length).fill(0) };
      this.#series.set(key, series);
    }
    series.count += 1;
    series.sum += seconds;
    const at = buckets.findIndex((bound) => seconds <= bound);
    if (at >= 0) series.inBucket[at] = (series.inBucket[at] ?? 0) + 1;
  }

  /** The exposition text. */
  render(): string {
    const lines = [
      '# HELP http_requests_in_flight Current number of requests being served.',
      '# TYPE http_requests_in_flight gauge',
      `http_requests_in_flight ${this.#inFlight()}`,
      '# HELP http_requests_total Total number of HTTP requests by status code and method.',
      '# TYPE http_requests_total counter',
    ];
    for (const series of this.#series.values())
      lines.push(`http_requests_total{${series.labels}} ${series.count}`);
    lines.push(
      '# HELP http_request_duration_seconds Seconds spent serving HTTP requests.',
      '# TYPE http_request_duration_seconds histogram',
    );
    for (const series of this.#series.values()) {
      let cumulative = 0;
      buckets.forEach((bound, i) => {
        cumulative += series.inBucket[i] ?? 0;
        lines.push(
          `http_request_duration_seconds_bucket{${series.labels},le="${bound}"} ${cumulative}`,
        );
      });
      lines.push(
        `http_request_duration_seconds_bucket{${series.labels},le="+Inf"} ${series.count}`,
        `http_request_duration_seconds_sum{${series.labels}} ${series.sum}`,
        `http_request_duration_seconds_count{${series.labels}} ${series.count}`,
      );
    }
    return `${lines.join('\n')}\n`;
  }
}
