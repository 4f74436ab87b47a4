import type { IncomingMessage } from 'node:http';
import { hopByHopHeaders } from '../core/http-headers.js';
import { BodyTooLargeError, type Call, readBody, refuseLargeBody } from './call.js';
import type { WatchdogConfig } from './config.js';
import { UpstreamClient, type UpstreamRequest } from './upstream-client.js';

/** Not forwarded: hop-by-hop headers, and Content-Length, which the upstream client writes itself. */
const notForwarded = new Set([...hopByHopHeaders, 'content-length']);

/** Bodies up to this size are read before forwarding (one write upstream); larger ones stream. */
const smallBodyBytes = 64 * 1024;

function forwardableHeaders(raw: readonly string[]): string[] {
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (!notForwarded.has(name.toLowerCase())) headers.push(name, raw[i + 1] as string);
  }
  return headers;
}

function declaredLength(req: IncomingMessage): number | undefined {
  const length = req.headers['content-length'];
  return length === undefined ? undefined : Number(length);
}

export interface HttpProxy {
  handle(call: Call): void;
  /** Sends `GET path` upstream and reports whether it answered 2xx within the time. */
  probe(path: string, timeoutMs: number): Promise<boolean>;
  close(): void;
}

/**
 * `http` mode: reverse-proxies every request to the long-running function process over kept-alive
 * connections. Method, path, query, headers, status and both bodies pass through; bodies stream
 * with backpressure (chunked and SSE responses included), except that a small request body with
 * a known length is read first so it goes upstream in one write.
 */
export function createHttpProxy(config: WatchdogConfig, isUp: () => boolean): HttpProxy {
  const upstream = config.upstreamUrl as URL;
  const basePath = upstream.pathname === '/' ? '' : upstream.pathname.replace(/\/$/, '');
  const client = new UpstreamClient(upstream);

  const forward = (call: Call, request: UpstreamRequest) => {
    if (call.timedOut) return;
    const { res } = call;
    const exchange = client.request(request, {
      onHead(status, headers) {
        headers.push('X-Duration-Seconds', call.durationSeconds());
        try {
          res.writeHead(status, headers);
        } catch (error) {
          exchange.cancel();
          call.failInternally(
            502,
            `the function answered with an invalid header: ${(error as Error).message}`,
          );
        }
      },
      onData(chunk) {
        if (res.write(chunk)) return true;
        res.once('drain', () => exchange.resume());
        return false;
      },
      onEnd(last) {
        res.end(last);
      },
      onError(error) {
        if (call.timedOut || res.destroyed) return;
        call.failInternally(
          502,
          `cannot reach the function at ${upstream.origin}: ${error.message}`,
        );
      },
    });
    call.work = exchange;
  };

  return {
    handle(call) {
      if (!isUp()) {
        call.failInternally(503, 'the function process is not ready');
        return;
      }
      // The deadline runs from arrival: it also covers reading a body before forwarding it.
      call.timeoutStatus = 504;
      const { req } = call;
      const method = req.method ?? 'GET';
      const path = basePath + (req.url ?? '/');
      const headers = forwardableHeaders(req.rawHeaders);
      const length = declaredLength(req);
      const chunked = req.headers['transfer-encoding'] !== undefined;
      if (!chunked && (length === undefined || length === 0)) {
        forward(call, { method, path, headers, body: null });
      } else if (config.bufferHttp || (length !== undefined && length <= smallBodyBytes)) {
        if (length !== undefined && length > config.maxRequestBytes) {
          return refuseLargeBody(call, config.maxRequestBytes);
        }
        readBody(req, config.maxRequestBytes, (error, body) => {
          if (error instanceof BodyTooLargeError) refuseLargeBody(call, config.maxRequestBytes);
          else if (error) call.res.destroy();
          else forward(call, { method, path, headers, body });
        });
      } else {
        forward(call, {
          method,
          path,
          headers,
          body: req,
          contentLength: chunked ? undefined : length,
        });
      }
    },

    probe(path, timeoutMs) {
      return new Promise((resolve) => {
        let ok = false;
        const exchange = client.request(
          { method: 'GET', path: basePath + path, headers: [], body: null },
          {
            onHead: (status) => (ok = status >= 200 && status < 300),
            onData: () => true,
            onEnd: () => {
              clearTimeout(timer);
              resolve(ok);
            },
            onError: () => {
              clearTimeout(timer);
              resolve(false);
            },
          },
        );
        const timer = setTimeout(() => {
          exchange.cancel();
          resolve(false);
        }, timeoutMs);
      });
    },

    close: () => client.close(),
  };
}
