/**
 * The async message: an HTTP call to a function, recorded by the gateway's
 * `/async-function/{name}` and replayed by a queue worker. The keys are PascalCase, as in
 * faas-provider's `QueueRequest`, so a message reads the same on every queue backend.
 */
export interface QueueRequest {
  /** Every header of the original request (X-Call-Id and X-Start-Time included), as Go's http.Header. */
  Header: Record<string, string[]>;
  Host: string;
  /**
   * The request body's bytes as base64 text: Go writes a []byte that way in JSON. An empty body
   * is `""`. Decode with `Buffer.from(Body, 'base64')`; encode with `.toString('base64')`.
   */
  Body: string;
  /** The original method. OpenFaaS's worker always replays with POST. */
  Method: string;
  /**
   * The path after `/async-function/<name>`, raw as sent (percent-encoded: `/a%20b`, `/a%3Fb`),
   * e.g. `/orders/1`; empty for none.
   */
  Path: string;
  /** The raw query string, without `?`. */
  QueryString: string;
  /** The function, as `name` or `name.namespace`. */
  Function: string;
  /**
   * The function's own timeout when the call was queued (the longest of its `write_timeout` and
   * `exec_timeout`), in ms: the worker's deadline for each attempt follows it. fnbus's own field.
   */
  FunctionTimeoutMs?: number;
  /** A named queue other than the default one. */
  QueueName?: string;
  Annotations?: Record<string, string>;
  Labels?: Record<string, string>;
  Environment?: Record<string, string>;
  /**
   * Where to POST the function's answer (from the X-Callback-Url header), as absolute URL text.
   * OpenFaaS's Go code writes its url.URL as an object of parts; fnbus writes the text.
   */
  CallbackUrl?: string;
}
