import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../../core/logger.js';
import type { InvokerResponse, ResponseSubscriber } from './controller.js';

/** Logs each delivery: function, topic, status, time; the answer's body too when asked. */
export class ResponsePrinter implements ResponseSubscriber {
  readonly #logger: Logger;
  readonly #withBody: boolean;

  constructor(logger: Logger, withBody: boolean) {
    this.#logger = logger;
    this.#withBody = withBody;
  }

  response(r: InvokerResponse): void {
    const fields = {
      function: r.function,
      topic: r.topic,
      status: r.status,
      attempts: r.attempts,
      ms: Math.round(r.durationMs),
      ...(this.#withBody ? { body: Buffer.from(r.body).toString('utf8') } : {}),
    };
    if (r.error === undefined) this.#logger.info(fields, 'delivered');
    else this.#logger.warn({ ...fields, error: r.error }, 'not delivered');
  }
}

/** Prometheus counts of deliveries by connector, topic, function and outcome, and their time. */
export class ResponseMetrics implements ResponseSubscriber {
  readonly #deliveries: Counter<'connector' | 'topic' | 'function_name' | 'code'>;
  readonly #seconds: Histogram<'connector' | 'function_name'>;

  /** Connectors of one process share the registry's metrics (labelled by connector). */
  constructor(registry: Registry) {
    const deliveries = registry.getSingleMetric('fnbus_connector_deliveries_total');
    const seconds = registry.getSingleMetric('fnbus_connector_delivery_seconds');
    if (deliveries instanceof Counter && seconds instanceof Histogram) {
      this.#deliveries = deliveries;
      this.#seconds = seconds;
      return;
    }
    this.#deliveries = new Counter({
      name: 'fnbus_connector_deliveries_total',
      help: 'Events delivered to functions, by status ("failed" when never answered)',
      labelNames: ['connector', 'topic', 'function_name', 'code'],
      registers: [registry],
    });
    this.#seconds = new Histogram({
      name: 'fnbus_connector_delivery_seconds',
      help: 'Time from the first call to the final answer, retries included',
      labelNames: ['connector', 'function_name'],
      registers: [registry],
    });
  }

  response(r: InvokerResponse): void {
    const code = r.error !== undefined && r.status === undefined ? 'failed' : String(r.status);
    this.#deliveries.inc({
      connector: r.connector,
      topic: r.topic,
      function_name: r.function,
      code,
    });
    this.#seconds.observe(
      { connector: r.connector, function_name: r.function },
      r.durationMs / 1000,
    );
  }
}

/**
 * Publishes each function's answer to the event's reply topic, where its source has one
 * (`SourceEvent.reply`): synchronous deliveries that got an answer only (an async call's answer is
 * the gateway's 202). Does not block the delivery; a reply has a deadline (its signal), and one
 * that cannot be sent is logged.
 */
export class ReplyPublisher implements ResponseSubscriber {
  readonly #logger: Logger;
  readonly #timeoutMs: number;

  /** `timeoutMs`: how long a reply may take before its signal aborts. */
  constructor(logger: Logger, timeoutMs = 10_000) {
    this.#logger = logger;
    this.#timeoutMs = timeoutMs;
  }

  response(r: InvokerResponse): void {
    const reply = r.event.reply;
    if (!reply || r.async || r.status === undefined) return;
    const answer = { function: r.function, status: r.status, headers: r.headers, body: r.body };
    reply(answer, AbortSignal.timeout(this.#timeoutMs)).catch((error: unknown) => {
      this.#logger.warn({ err: error, function: r.function, topic: r.topic }, 'reply not sent');
    });
  }
}
