import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * A replica that serves calls inside the gateway's own process (the process provider's), handed
 * the caller's own request and response, so a call crosses one proxy rather than two.
 */
export interface LocalReplica {
  /**
   * Serves one call; `req.url` is the path and query the function sees. A call still running
   * after `timeoutMs` (the gateway's upstream_timeout; 0 for none) is stopped and answered 502.
   */
  serve(req: IncomingMessage, res: ServerResponse, timeoutMs: number): void;
}

/**
 * A ready local replica of `name`, chosen as Provider.resolve() chooses one. Synchronous, as it
 * runs on every call; throws as resolve() rejects (NotFoundError, UnavailableError, ...). `cli/`
 * hands the gateway the process provider's; other providers have none.
 */
export type ResolveLocal = (name: string, namespace?: string) => LocalReplica;
