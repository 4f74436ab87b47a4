/**
 * The one error base of fnbus. Every error that crosses a seam carries a stable `code` and the
 * HTTP status it maps to, so the gateway (and any other HTTP edge) maps errors in one place.
 * A function's own failure is not an error: it is data (status + body).
 */
export class FnbusError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(code: string, status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

/** Bad input from a caller: a 400 that says what was wrong. */
export class ValidationError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('invalid_request', 400, message, options);
  }
}

export class NotFoundError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('not_found', 404, message, options);
  }
}

export class ConflictError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('conflict', 409, message, options);
  }
}

/** A configured cap (functions, replicas) would be passed: refused, nothing changed. */
export class LimitError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('limit_reached', 409, message, options);
  }
}

/**
 * An Idempotency-Key reused for a different request (another method, path, query or body) to the
 * same function: 422, as the IETF idempotency-key draft and Stripe answer it.
 */
export class IdempotencyKeyReusedError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('idempotency_key_reused', 422, message, options);
  }
}

/**
 * The queue holds as many calls as it may (`max_queued_calls`): 429 with `Retry-After`, so that
 * clients and connectors back off and try again once it drains; nothing was queued.
 */
export class QueueFullError extends FnbusError {
  /** What the answer's Retry-After says. */
  readonly retryAfterSeconds: number;

  constructor(message: string, retryAfterSeconds = 1, options?: ErrorOptions) {
    super('queue_full', 429, message, options);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A request body over a configured size limit: refused unread past the limit, 413. */
export class PayloadTooLargeError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('payload_too_large', 413, message, options);
  }
}

/** A capability this backend lacks; answered 501, never faked. */
export class NotImplementedError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('not_implemented', 501, message, options);
  }
}

/** No replica can take the call right now, or no queue can keep it (unreachable, stopping). */
export class UnavailableError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('unavailable', 503, message, options);
  }
}

/**
 * A server fnbus stands in front of (a remote provider) answered with something it cannot use: a
 * 5xx of its own, a refusal of fnbus's credentials, a body that is not what the API says. 502.
 */
export class BadGatewayError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('bad_gateway', 502, message, options);
  }
}

/**
 * Where calls are stored is full (a disk: SQLITE_FULL, ENOSPC; a broker out of memory or disk):
 * nothing new can be kept until room is made. 507, as WebDAV's Insufficient Storage.
 */
export class InsufficientStorageError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('insufficient_storage', 507, message, options);
  }
}

/** Configuration that cannot be used. Lists every problem found, not just the first. */
export class ConfigError extends FnbusError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('invalid_config', 500, `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/** A function the provider keeps but could not start: waiting (scale from zero) would not help. */
export class NotStartedError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('not_started', 503, message, options);
  }
}

/** A file operation on fnbus's own state failed (the message says what and why, never where). */
export class StorageError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('storage_failed', 500, message, options);
  }
}

/** A template handler's dependencies could not be installed. */
export class InstallError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('install_failed', 500, message, options);
  }
}

/** A function's container image could not be built or pushed (the message says which and why). */
export class ImageError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('image_failed', 500, message, options);
  }
}

/** A function answered a call with a failure status (the CLI's `invoke`): its status, kept. */
export class FunctionCallError extends FnbusError {
  constructor(status: number, message: string, options?: ErrorOptions) {
    super('function_error', status, message, options);
  }
}

/** The HTTP status an unknown thrown value maps to: its own for a FnbusError, else 500. */
export function statusOf(error: unknown): number {
  return error instanceof FnbusError ? error.status : 500;
}

/** An error as an HTTP answer: status, one line of text, and any headers it needs. */
export interface HttpAnswer {
  status: number;
  text: string;
  headers: Record<string, string>;
}

/**
 * How any error answers over HTTP, decided here alone (the gateway's error handler and its
 * invoke routes use it): a FnbusError with its own status and message (429 with Retry-After);
 * anything else a 500 `internal error`, since an unexpected error's message may name files of
 * this machine, and a stack trace never leaves the process.
 */
export function httpAnswer(error: unknown): HttpAnswer {
  if (!(error instanceof FnbusError)) {
    return { status: 500, text: 'internal error\n', headers: {} };
  }
  const headers: Record<string, string> =
    error instanceof QueueFullError ? { 'Retry-After': String(error.retryAfterSeconds) } : {};
  return { status: error.status, text: `${error.message}\n`, headers };
}

/**
 * A server could not listen: its port is in use or not this user's to take, or its address is
 * not one of this machine's. One line that names the port and address, for `fnbus up` and the
 * other services to print before exiting 1.
 */
export class ListenError extends FnbusError {
  constructor(message: string, options?: ErrorOptions) {
    super('cannot_listen', 500, message, options);
  }
}

/** Node's listen failure (EADDRINUSE, EACCES, EADDRNOTAVAIL) as a ListenError; else undefined. */
export function listenError(error: unknown): ListenError | undefined {
  if (!(error instanceof Error)) return undefined;
  const { code, port, address } = error as NodeJS.ErrnoException & {
    port?: number;
    address?: string;
  };
  const everywhere = address === undefined || address === '::' || address === '0.0.0.0';
  const where = `port ${port ?? '?'} on ${everywhere ? 'every address' : address}`;
  const message =
    code === 'EADDRINUSE'
      ? `${where} is in use`
      : code === 'EACCES'
        ? `${where} is not this user's to listen on (ports below 1024 need privileges)`
        : code === 'EADDRNOTAVAIL'
          ? `${address ?? 'the address'} is not an address of this machine`
          : undefined;
  return message === undefined ? undefined : new ListenError(message, { cause: error });
}
