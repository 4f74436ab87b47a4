import { setTimeout as sleep } from 'node:timers/promises';
import type { HeaderMap } from '../core/invoker.js';
import { headersToSend } from '../core/http-headers.js';

export interface CallbackOptions {
  /** Tries in all (the first included); default 5. */
  attempts: number;
  /** The first wait between tries; doubles each time. */
  firstWaitMs: number;
  /** Longest wait for the receiver's answer. */
  timeoutMs: number;
}

export interface CallbackResult {
  delivered: boolean;
  tries: number;
  /** The last status received, or why none was. */
  last: string;
}

/**
 * POSTs an async call's result to its X-Callback-Url: the function's body and headers plus the
 * call headers the caller gave. A 2xx is delivered; anything else (5xx, no answer) is tried again
 * after a doubling wait. Redirects are not followed: a client that follows one with a GET drops
 * the body (OpenFaaS's worker does: nats-queue-worker#102), so a 3xx counts as not delivered.
 */
export async function postCallback(
  url: string,
  body: Uint8Array,
  headers: HeaderMap,
  options: CallbackOptions,
  signal?: AbortSignal,
): Promise<CallbackResult> {
  const sent = headersToSend(headers);
  // Loaded when first needed, as the invoker's pool: most hubs post no callback.
  const { request } = await import('undici');
  let last = 'not tried';
  for (let tries = 1; tries <= options.attempts; tries++) {
    try {
      const answer = await request(url, {
        method: 'POST',
        headers: sent,
        body,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
        signal,
      });
      await answer.body.dump();
      last = `status ${answer.statusCode}`;
      if (answer.statusCode >= 200 && answer.statusCode < 300) {
        return { delivered: true, tries, last };
      }
      if (answer.statusCode < 400) {
        return { delivered: false, tries, last: `${last}: redirects are not followed` };
      }
      // A client error will not mend itself, except for the two that say "later".
      const later = answer.statusCode === 408 || answer.statusCode === 429;
      if (answer.statusCode < 500 && !later) {
        return { delivered: false, tries, last };
      }
    } catch (error) {
      if (signal?.aborted) return { delivered: false, tries, last: 'aborted' };
      last = (error as Error).message;
    }
    if (tries < options.attempts) {
      await sleep(options.firstWaitMs * 2 ** (tries - 1), undefined, { signal }).catch(() => {});
    }
  }
  return { delivered: false, tries: options.attempts, last };
}
