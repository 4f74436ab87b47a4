import type { IncomingMessage, ServerResponse } from 'node:http';
import { PayloadTooLargeError } from '../core/errors.js';

/** Marks errors made by the watchdog itself, so gateways and queue workers can tell them apart. */
export const internalHeader = 'X-OpenFaaS-Internal';
export const internalValue = 'fnbus-watchdog';

/** Work in progress for a call (a process, an upstream exchange) that can be stopped. */
export interface Cancellable {
  cancel(): void;
}

/** One request through the watchdog: its clock, its deadline and how to answer it. */
export class Call {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly #startedAt = performance.now();
  #timer: NodeJS.Timeout | undefined;
  #timedOut = false;
  /**
   * What is running for this call; cancelled when the deadline passes or the caller goes away.
   * An object rather than callbacks: closures here kept whole request contexts alive and cost
   * ~20% of the proxy's throughput (measured).
   */
  work: Cancellable | undefined;
  /**
   * The status to answer with at once when the deadline passes (http mode: 504). Unset, the
   * mode answers itself once the cancelled work has ended (forked modes: 408 on exit).
   */
  timeoutStatus: number | undefined;
  /**
   * Set when the deadline is the host's (a gateway's upstream_timeout), not the function's own:
   * the status answered at once when it passes (502, as a gateway answers for a late upstream).
   */
  hostDeadlineStatus: number | undefined;

  /** `onClosed` runs once the response is finished or abandoned. */
  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    timeoutMs: number,
    onClosed: (call: Call) => void,
  ) {
    this.req = req;
    this.res = res;
    if (timeoutMs > 0) {
      this.#timer = setTimeout(() => this.#onDeadline(), timeoutMs);
    }
    res.once('close', () => {
      clearTimeout(this.#timer);
      if (!res.writableFinished) this.work?.cancel();
      this.work = undefined;
      onClosed(this);
    });
  }

  #onDeadline(): void {
    this.#timedOut = true;
    this.work?.cancel();
    if (this.hostDeadlineStatus !== undefined) {
      this.failInternally(
        this.hostDeadlineStatus,
        'the function did not answer within upstream_timeout',
      );
    } else if (this.timeoutStatus !== undefined) {
      this.failInternally(this.timeoutStatus, 'the function did not answer in time');
    }
  }

  get timedOut(): boolean {
    return this.#timedOut;
  }

  elapsedSeconds(): number {
    return (performance.now() - this.#startedAt) / 1000;
  }

  /** Seconds since the request arrived, formatted like Go's `%f`, for X-Duration-Seconds. */
  durationSeconds(): string {
    return this.elapsedSeconds().toFixed(6);
  }

  /**
   * Answers with an error the watchdog made (not the function): plain text, marked internal.
   * If the function's response has already started, the only honest signal left is to cut
   * the connection, so the client sees an incomplete response rather than a false success.
   */
  failInternally(status: number, message: string): void {
    const { res } = this;
    if (res.writableEnded) return; // already answered (a deadline's error came first)
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = Buffer.from(message.endsWith('\n') ? message : `${message}\n`);
    res.writeHead(status, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': body.length,
      [internalHeader]: internalValue,
      'X-Duration-Seconds': this.durationSeconds(),
    });
    res.end(body);
  }
}

/** A body over the limit given to readBody: answered 413 (refuseLargeBody). */
export class BodyTooLargeError extends PayloadTooLargeError {}

/** The 413 of a body over `max_request_bytes`, seen from its declared length or as it came. */
export function refuseLargeBody(call: Call, maxRequestBytes: number): void {
  call.failInternally(413, `request body over max_request_bytes (${maxRequestBytes})`);
}

/**
 * Collects a request body into one Buffer, up to `maxBytes` (past it: BodyTooLargeError, and the
 * rest is not kept). A callback, not a promise: it is on the hot path.
 */
export function readBody(
  req: IncomingMessage,
  maxBytes: number,
  done: (error: Error | undefined, body: Buffer) => void,
): void {
  let chunks: Buffer[] = [];
  let bytes = 0;
  let over = false;
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (over) return;
    if (bytes > maxBytes) {
      over = true;
      chunks = [];
      done(new BodyTooLargeError(`request body over ${maxBytes} bytes`), Buffer.alloc(0));
      return;
    }
    chunks.push(chunk);
  });
  req.once('end', () => {
    if (!over) done(undefined, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
  });
  req.once('error', (error) => {
    if (!over) done(error, Buffer.alloc(0));
  });
}
