import type { MessageEndpoint } from './local-channel.js';

/**
 * Messages to another thread, sent as one array per turn of the event loop: a message crossing
 * threads costs tens of µs on each side whatever it holds, so a turn's worth goes at once.
 */
export class TurnBatch<T> {
  readonly #port: MessageEndpoint;
  #items: T[] = [];

  constructor(port: MessageEndpoint) {
    this.#port = port;
  }

  post(item: T): void {
    if (this.#items.push(item) === 1) setImmediate(this.flush);
  }

  /** Sends what is waiting now (before the port closes, say). */
  readonly flush = (): void => {
    if (this.#items.length === 0) return;
    const batch = this.#items;
    this.#items = [];
    this.#port.postMessage(batch);
  };
}
