import type { WholeAnswer } from '../client/exchange.js';
import { timeoutError } from '../client/exchange.js';
import type { CallLimits, HeaderMap } from '../core/invoker.js';
import type {
  UpstreamClient,
  UpstreamExchange,
  UpstreamRequest,
} from '../watchdog/upstream-client.js';

/**
 * One call to a replica through the watchdog's lean HTTP/1.1 client (watchdog/upstream-client.ts:
 * a third of undici's CPU a call on loopback), the answer read whole, its header names in lower
 * case as undici gives them. Rejects once `timeoutMs` passes (a TimeoutError, as
 * AbortSignal.timeout would) or `signal` aborts, and the exchange's connection is dropped.
 */
export function replicaExchange(
  client: UpstreamClient,
  request: UpstreamRequest,
  { timeoutMs, signal }: CallLimits = {},
): Promise<WholeAnswer> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    let status = 0;
    const headers: HeaderMap = {};
    const chunks: Buffer[] = [];
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (then: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      then();
    };
    // A signal's reason is the caller's to choose (an Error, as a rule): passed on as it is.
    const stop = (reason: Error) =>
      settle(() => {
        exchange?.cancel();
        reject(reason);
      });
    const onAbort = () => stop(signal?.reason as Error);
    if (timeoutMs !== undefined && timeoutMs > 0) {
      timer = setTimeout(() => stop(timeoutError()), timeoutMs);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    const exchange: UpstreamExchange | undefined = client.request(request, {
      onHead(code, flat) {
        status = code;
        for (let i = 0; i < flat.length; i += 2) {
          const name = (flat[i] as string).toLowerCase();
          const value = flat[i + 1] as string;
          const had = headers[name];
          headers[name] = had === undefined ? value : [...[had].flat(), value];
        }
      },
      onData(chunk) {
        chunks.push(chunk);
        return true;
      },
      onEnd(last) {
        if (last) chunks.push(last);
        const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
        settle(() => resolve({ status, headers, body }));
      },
      onError(error) {
        settle(() => reject(error));
      },
    });
  });
}
