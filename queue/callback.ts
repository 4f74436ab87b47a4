import { setTimeout as sleep } from 'node:timers/promises';
import type { HeaderMap } from '../core/invoker.js';
import { headersToSend } from '../core/http-headers.js';
import { headerProblems } from '../core/http-request-check.js';
import { backoffMs } from '../core/retry-policy.js';

export interface CallbackOptions {
  /** Tries in all (the first included); default 5. */
  attempts: number;
  /** The first wait between tries; doubles each time (with jitter). */
  firstWaitMs: number;
  /** The deadline of each try: the receiver's whole answer, a wait for a connection included. */
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
 * after a doubling wait (jittered). Redirects are not followed: a client that follows one with a GET drops
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
  // What no request can carry is never handed to undici (it would hold a connection slot for good).
  const problems = [...headerProblems(sent), ...urlProblems(url)];
  if (problems.length > 0) {
    return { delivered: false, tries: 0, last: `cannot be sent: ${problems.join('; ')}` };
  }
  // Loaded when first needed, as the invoker's pool: most hubs post no callback.
  const { request } = await import('undici');
  let last = 'not tried';
  for (let tries = 1; tries <= options.attempts; tries++) {
    const deadline = AbortSignal.timeout(options.timeoutMs);
    try {
      const answer = await request(url, {
        method: 'POST',
        headers: sent,
        body,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
        signal: signal ? AbortSignal.any([deadline, signal]) : deadline,
      });
      // Read to the end (or destroyed, past the deadline): the connection goes back either way.
      await answer.body
        .dump({ limit: 64 * 1024, signal: deadline })
        .catch(() => answer.body.destroy());
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
      last = deadline.aborted
        ? `no answer within ${options.timeoutMs} ms`
        : (error as Error).message;
    }
    if (tries < options.attempts) {
      const waitMs = backoffMs({ minWaitMs: options.firstWaitMs, maxWaitMs: Infinity }, tries);
      await sleep(waitMs, undefined, { signal }).catch(() => {});
    }
  }
  return { delivered: false, tries: options.attempts, last };
}

/** An X-Callback-Url must be an http(s) URL whose path and query a request can carry. */
function urlProblems(text: string): string[] {
  if (!URL.canParse(text)) return [`callback URL ${JSON.stringify(text)} is not a URL`];
  const url = new URL(text);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return [`callback URL ${JSON.stringify(text)} is not http or https`];
  }
  return [];
}
