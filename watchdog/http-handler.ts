import type { IncomingMessage } from 'node:http';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { type Call, readBody } from './call.js';
import type { WatchdogConfig } from './config.js';

/** Connection-level headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1). */
const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
]);

/** Bodies up to this size are read before forwarding (one write upstream); larger ones stream. */
const smallBodyBytes = 64 * 1024;

function forwardableHeaders(raw: readonly string[]): string[] {
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (!hopByHop.has(name.toLowerCase())) headers.push(name, raw[i + 1] as string);
  }
  return headers;
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return length !== undefined ? length !== '0' : req.headers['transfer-encoding'] !== undefined;
}

export interface HttpProxy {
  handle(call: Call): void;
  /** Sends `GET ready_path` upstream and reports whether it answered 2xx. */
  probe(path: string, timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * `http` mode: reverse-proxies every request to the long-running function process over a pool
 * of kept-alive connections. Method, path, query, headers, status and both bodies pass through;
 * bodies stream with backpressure (chunked and SSE responses included), except that a small
 * request body with a known length is read first so it goes upstream in one write.
 */
export function createHttpProxy(config: WatchdogConfig, isUp: () => boolean): HttpProxy {
  const upstream = config.upstreamUrl as URL;
  const basePath = upstream.pathname === '/' ? '' : upstream.pathname.replace(/\/$/, '');
  const pool = new Pool(upstream.origin, {
    connections: config.maxInflight > 0 ? config.maxInflight : 1024,
    // The deadline of each call is ours to enforce; undici's own timers would cut long streams.
    headersTimeout: 0,
    bodyTimeout: 0,
  });

  const dispatch = (call: Call, body: Dispatcher.DispatchOptions['body']) => {
    const { req, res } = call;
    pool.dispatch(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: basePath + (req.url ?? '/'),
        headers: forwardableHeaders(req.rawHeaders),
        body,
      },
      {
        onRequestStart(controller) {
          call.onTimeout = () => {
            controller.abort(new Error('timeout'));
            call.failInternally(504, 'function did not answer in time (exec_timeout)');
          };
          res.once('close', () => {
            if (!res.writableFinished) controller.abort(new Error('caller went away'));
          });
        },
        onResponseStart(controller, statusCode) {
          const raw = (controller.rawHeaders ?? []) as Buffer[];
          const headers: string[] = [];
          for (let i = 0; i < raw.length; i += 2) {
            const name = String(raw[i]);
            if (!hopByHop.has(name.toLowerCase())) headers.push(name, String(raw[i + 1]));
          }
          headers.push('X-Duration-Seconds', call.durationSeconds());
          res.writeHead(statusCode, headers);
        },
        onResponseData(controller, chunk) {
          if (!res.write(chunk)) {
            controller.pause();
            res.once('drain', () => controller.resume());
          }
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError(_controller, error) {
          if (call.timedOut || res.destroyed) return;
          call.failInternally(502, `cannot reach the function at ${upstream.origin}: ${error.message}`);
        },
      },
    );
  };

  return {
    handle(call) {
      if (!isUp()) {
        call.failInternally(503, 'the function process is not ready');
        return;
      }
      const { req } = call;
      if (!hasBody(req)) return dispatch(call, null);
      const length = Number(req.headers['content-length']);
      if (config.bufferHttp || length <= smallBodyBytes) {
        readBody(req).then(
          (body) => dispatch(call, body),
          () => call.res.destroy(),
        );
        return;
      }
      dispatch(call, req);
    },

    async probe(path, timeoutMs) {
      try {
        const { statusCode, body } = await pool.request({
          method: 'GET',
          path: basePath + path,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        await body.dump();
        return statusCode >= 200 && statusCode < 300;
      } catch {
        return false;
      }
    },

    close: () => pool.close(),
  };
}
