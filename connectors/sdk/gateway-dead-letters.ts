import type { GatewayClient } from '../../client/gateway-client.js';
import { bodyExcerpt } from '../../core/queue.js';
import type { DeadLetterSink, InvokerResponse } from './controller.js';

/**
 * Keeps failed deliveries in the gateway's dead-letter store (`POST /system/dead-letters`), with
 * the async path's: `fnbus dlq list|show|redrive|purge` see them, and a redrive queues the event's
 * call as an async call. A gateway without that store (OpenFaaS's) refuses, and the delivery is
 * logged as lost instead.
 */
export class GatewayDeadLetters implements DeadLetterSink {
  readonly #gateway: GatewayClient;
  readonly #signal: () => AbortSignal | undefined;

  /** `signal`: that of one call (its deadline, and the connector's close). */
  constructor(gateway: GatewayClient, signal: () => AbortSignal | undefined = () => undefined) {
    this.#gateway = gateway;
    this.#signal = signal;
  }

  async record(response: InvokerResponse): Promise<void> {
    await this.#gateway.system(
      'POST',
      '/system/dead-letters',
      {
        function: response.function,
        method: response.request.method,
        path: response.request.path,
        query: response.request.query,
        headers: response.request.headers,
        body: Buffer.from(response.request.body).toString('base64'),
        attempts: response.tries,
        ...(response.status === undefined ? {} : { lastStatus: response.status }),
        lastBodyExcerpt: bodyExcerpt(response.body),
        reason: response.error ?? 'not delivered',
      },
      undefined,
      this.#signal(),
    );
  }
}
