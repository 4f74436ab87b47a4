/**
 * Headers of a call. A name may carry several values (e.g. two `X-Connector` entries), so a value
 * is a string or a list. Names are matched without regard to case, as HTTP requires.
 */
export type HeaderMap = Record<string, string | string[]>;

/** An HTTP call to a function, as data. */
export interface InvokeRequest {
  method: string;
  /** The path inside the function, after `/function/<name>`; `/` for none. */
  path: string;
  /** The raw query string, without `?`; empty for none. */
  query: string;
  headers: HeaderMap;
  body: Uint8Array;
}

/** A function's answer, as data: a 500 from the function is a result, not an exception. */
export interface InvokeResult {
  status: number;
  headers: HeaderMap;
  body: Uint8Array;
  /** Time from sending the request to receiving the whole answer. */
  durationMs: number;
}

/** What bounds one call. */
export interface CallLimits {
  /**
   * Longest wait for the whole answer from when the call is made, a wait for a connection
   * included; past it the call rejects with a `TimeoutError`. 0 or absent: none of its own.
   */
  timeoutMs?: number;
  /** Ends the call sooner, rejecting with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Calls a function by name and hands back its answer. Connectors and the queue worker call
 * functions through this, so they need not know whether the gateway is in this process or across
 * the network, and tests can count calls without a server.
 *
 * `invoke` resolves with whatever status the function (or the gateway in front of it) answered;
 * an answer made by fnbus itself rather than the function carries `X-OpenFaaS-Internal`. It
 * rejects only when no answer came back at all (connection refused, or a limit ended it), so a
 * caller can tell "the function said no" from "the call never arrived".
 */
export interface Invoker {
  /** `fn` is `name` or `name.namespace`. */
  invoke(fn: string, request: InvokeRequest, limits?: CallLimits): Promise<InvokeResult>;
}
