import type { Pool } from 'undici';
import { headersToSend } from '../core/http-headers.js';
import type { HeaderMap, InvokeRequest, InvokeResult, Invoker } from '../core/invoker.js';

export interface GatewayInvokerOptions {
  /** The gateway, e.g. `http://127.0.0.1:8080`. */
  gatewayUrl: string;
  /** Longest wait for a function's answer; 0 for none. */
  timeoutMs: number;
  /** Connections kept to the gateway; default 128. */
  connections?: number;
  /** Through `/async-function/<fn>`: the answer is the gateway's 202 and the call's X-Call-Id. */
  async?: boolean;
}

/**
 * Calls functions through a gateway's `/function/<name>` (or `/async-function/<name>`), over
 * kept-alive connections: how the queue worker and the connectors run a call, whether the gateway
 * is in their process (`fnbus up`) or not.
 */
export class GatewayInvoker implements Invoker {
  readonly #options: GatewayInvokerOptions;
  /** The path up to the function's name: `<gateway path>/function/`. */
  readonly #base: string;
  /** Made on the first call: a hub that never runs an async call never loads undici (~6 MB). */
  #pool: Promise<Pool> | undefined;

  constructor(options: GatewayInvokerOptions) {
    this.#options = options;
    const route = options.async ? 'async-function' : 'function';
    this.#base = `${new URL(options.gatewayUrl).pathname.replace(/\/$/, '')}/${route}/`;
  }

  #connect(): Promise<Pool> {
    this.#pool ??= import('undici').then(({ Pool }) => {
      const { gatewayUrl, timeoutMs, connections = 128 } = this.#options;
      return new Pool(new URL(gatewayUrl).origin, {
        connections,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    });
    return this.#pool;
  }

  async invoke(fn: string, request: InvokeRequest, signal?: AbortSignal): Promise<InvokeResult> {
    const startedAt = performance.now();
    const path = request.path.startsWith('/') ? request.path : `/${request.path}`;
    const query = request.query ? `?${request.query}` : '';
    const pool = await this.#connect();
    const answer = await pool.request({
      method: request.method,
      path: `${this.#base}${encodeURIComponent(fn)}${path === '/' ? '' : path}${query}`,
      headers: headersToSend(request.headers),
      body: request.body.length > 0 ? request.body : null,
      signal,
    });
    const body = new Uint8Array(await answer.body.arrayBuffer());
    const out: HeaderMap = {};
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value !== undefined) out[name] = value;
    }
    return {
      status: answer.statusCode,
      headers: out,
      body,
      durationMs: performance.now() - startedAt,
    };
  }

  async close(): Promise<void> {
    await (await this.#pool)?.close();
  }
}
