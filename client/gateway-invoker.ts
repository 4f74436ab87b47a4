import type { Pool } from 'undici';
import { ValidationError } from '../core/errors.js';
import { headersToSend } from '../core/http-headers.js';
import { requestProblems } from '../core/http-request-check.js';
import { exchange, shorterTimeout } from './exchange.js';
import type { CallLimits, InvokeRequest, InvokeResult, Invoker } from '../core/invoker.js';

export interface GatewayInvokerOptions {
  /** The gateway, e.g. `http://127.0.0.1:8080`. */
  gatewayUrl: string;
  /**
   * Longest wait for a function's whole answer, from the moment the call is made (a wait for a
   * free connection included); 0 for none. A call's own `signal` may end it sooner.
   */
  timeoutMs: number;
  /** Connections kept to the gateway; default 128. */
  connections?: number;
  /** Through `/async-function/<fn>`: the answer is the gateway's 202 and the call's X-Call-Id. */
  async?: boolean;
}

/** undici's codes for a request it refused to send: its pool may not get that slot back. */
const refusedCodes: ReadonlySet<string> = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);

/**
 * Calls functions through a gateway's `/function/<name>` (or `/async-function/<name>`), over
 * kept-alive connections: how the queue worker and the connectors run a call, whether the gateway
 * is in their process (`fnbus up`) or not.
 *
 * No call depends on a connection coming back: a call that cannot be sent is refused before
 * undici sees it (undici keeps a pool slot busy for good after refusing one), every call has a
 * deadline that aborts it wherever it is (waiting for a connection, for headers, for the body),
 * every answer's body is read or destroyed, and should undici refuse a call all the same, the
 * pool is replaced.
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

  /** Another pool for the calls to come; the old one closes once its calls are over. */
  #replacePool(old: Promise<Pool>, pool: Pool): void {
    if (this.#pool === old) this.#pool = undefined;
    pool.close().catch(() => {});
  }

  /**
   * `request.path` is raw (percent-encoded) and sent as is. Throws a ValidationError, without
   * sending anything, for a call no HTTP request can carry.
   */
  async invoke(fn: string, request: InvokeRequest, limits: CallLimits = {}): Promise<InvokeResult> {
    const startedAt = performance.now();
    const path = request.path === '/' ? '' : request.path;
    const problems = requestProblems({ ...request, path });
    if (problems.length > 0) throw new ValidationError(`cannot be sent: ${problems.join('; ')}`);
    const query = request.query ? `?${request.query}` : '';
    const pooled = this.#connect();
    const pool = await pooled;
    try {
      const answer = await exchange(
        pool,
        {
          method: request.method,
          path: `${this.#base}${encodeURIComponent(fn)}${path}${query}`,
          headers: headersToSend(request.headers),
          body: request.body.length > 0 ? request.body : null,
        },
        {
          timeoutMs: shorterTimeout(this.#options.timeoutMs, limits.timeoutMs),
          signal: limits.signal,
        },
      );
      return { ...answer, durationMs: performance.now() - startedAt };
    } catch (error) {
      if (refusedCodes.has((error as { code?: string }).code ?? ''))
        this.#replacePool(pooled, pool);
      throw error;
    }
  }

  async close(): Promise<void> {
    await (await this.#pool)?.close();
  }
}
