import type { Dispatcher } from 'undici';
import type { CallLimits, HeaderMap } from '../core/invoker.js';

/** An answer read whole. */
export interface WholeAnswer {
  status: number;
  /** Lower-case names, as undici parses them. */
  headers: HeaderMap;
  body: Uint8Array;
}

/** The shorter of two timeouts, 0 or absent being none. */
export function shorterTimeout(a?: number, b?: number): number | undefined {
  if (a === undefined || a <= 0) return b;
  if (b === undefined || b <= 0) return a;
  return Math.min(a, b);
}

/** Ends an exchange that passed its `timeoutMs`, as AbortSignal.timeout would. */
export function timeoutError(): DOMException {
  return new DOMException('The operation was aborted due to timeout', 'TimeoutError');
}

/**
 * One HTTP exchange through undici's dispatch API, the answer read whole: the shared way the
 * invokers call a function over HTTP. It rejects once `timeoutMs` passes or `signal` aborts,
 * wherever the exchange is (waiting for a connection, for headers, for the body), and undici
 * then drops the request or its connection. Cheaper a call than `request()`, which makes a body
 * stream and needs an AbortSignal of its own for the deadline.
 */
export function exchange(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  limits: CallLimits = {},
): Promise<WholeAnswer> {
  return new Promise((resolve, reject) => {
    // Ended already: nothing is dispatched (undici would still take a connection for it).
    if (limits.signal?.aborted) {
      reject(limits.signal.reason as Error);
      return;
    }
    const reader = new AnswerReader(resolve, reject, limits);
    try {
      dispatcher.dispatch(options, reader);
    } catch (error) {
      reader.onResponseError(undefined, error as Error);
    }
  });
}

/** Collects one answer; settles its promise once, on the answer, an error or a limit. */
class AnswerReader implements Dispatcher.DispatchHandler {
  readonly #resolve: (answer: WholeAnswer) => void;
  readonly #reject: (error: unknown) => void;
  readonly #signal: AbortSignal | undefined;
  readonly #timer: NodeJS.Timeout | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  /** Why the exchange was ended from here, if it was. */
  #stopped: unknown;
  #settled = false;
  #status = 0;
  #headers: HeaderMap = {};
  #chunks: Buffer[] = [];

  constructor(
    resolve: (answer: WholeAnswer) => void,
    reject: (error: unknown) => void,
    { timeoutMs, signal }: CallLimits,
  ) {
    this.#resolve = resolve;
    this.#reject = reject;
    if (timeoutMs !== undefined && timeoutMs > 0) {
      this.#timer = setTimeout(() => this.#stop(timeoutError()), timeoutMs);
    }
    if (signal) {
      this.#signal = signal;
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  readonly #onAbort = (): void => this.#stop(this.#signal?.reason);

  /** Settles at once; undici drops the request when it starts, or its connection now. */
  #stop(reason: unknown): void {
    if (this.#settled) return;
    this.#stopped = reason;
    this.#controller?.abort(reason as Error);
    this.#settle(() => this.#reject(reason));
  }

  #settle(then: () => void): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    then();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#stopped !== undefined) controller.abort(this.#stopped as Error);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    status: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.#status = status;
    for (const name in headers) {
      const value = headers[name];
      if (value !== undefined) this.#headers[name] = value;
    }
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    const chunks = this.#chunks;
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    this.#settle(() => this.#resolve({ status: this.#status, headers: this.#headers, body }));
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.#settle(() => this.#reject(error));
  }
}
