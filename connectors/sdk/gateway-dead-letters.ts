import type { GatewayClient } from '../../client/gateway-client.js';
import type { AttemptRecord } from '../../core/queue.js';
import type { DeadLetterSink, InvokerResponse } from './controller.js';

/** How much of a failed answer's body a dead letter keeps. */
const excerptChars = 512;

/**
 * Keeps failed deliveries in the gateway's dead-letter store (`POST /system/dead-letters`), with
 * the async path's: `fnbus dlq list|show|redrive|purge` see them, and a redrive queues the event's
 * call as an async call. A gateway without that store (OpenFaaS's) refuses, and the delivery is
 * logged as lost instead.
 */
export class GatewayDeadLetters implements DeadLetterSink {
  readonly #gateway: GatewayClient;

  constructor(gateway: GatewayClient) {
    this.#gateway = gateway;
  }

  async record(response: InvokerResponse): Promise<void> {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(response.request.headers)) headers[name] = value;
    const attempts: AttemptRecord[] = response.tries.map((attempt) => ({ ...attempt }));
    await this.#gateway.system('POST', '/system/dead-letters', {
      function: response.function,
      method: response.request.method,
      path: response.request.path,
      query: response.request.query,
      headers,
      body: Buffer.from(response.request.body).toString('base64'),
      attempts,
      ...(response.status === undefined ? {} : { lastStatus: response.status }),
      lastBodyExcerpt: Buffer.from(response.body).toString('utf8').slice(0, excerptChars),
      reason: response.error ?? 'not delivered',
    });
  }
}
