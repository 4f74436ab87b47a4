import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** Give up after this long; default 5s. */
  timeoutMs?: number;
  /** Poll this often; default 10ms. */
  intervalMs?: number;
  /** What the failure message says was awaited. */
  what?: string;
  /** What else the failure message should say: the state that was awaited, a log. */
  detail?: () => string;
}

/**
 * Polls `check` until it returns something other than undefined/false, and returns that.
 * Tests wait for conditions with this, never for a fixed time.
 */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 5000, intervalMs = 10, what = 'a condition', detail }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const cause =
        lastError instanceof Error
          ? ` (last error: ${lastError.message})`
          : lastError === undefined
            ? ''
            : ` (last error: ${JSON.stringify(lastError)})`;
      const more = detail ? `: ${detail()}` : '';
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${cause}${more}`);
    }
    await sleep(intervalMs);
  }
}
