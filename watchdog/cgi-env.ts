import type { IncomingMessage } from 'node:http';
import { headerText } from '../core/http-headers.js';

/** `content-type` → `Content-Type`, as Go canonicalises header names. */
export function canonicalHeaderName(name: string): string {
  return name
    .toLowerCase()
    .replace(/(^|-)([a-z])/g, (_, dash: string, letter: string) => dash + letter.toUpperCase());
}

/**
 * The CGI-style environment a forked function sees, as OpenFaaS's classic watchdog builds it:
 * `Http_<Header_Name>` (first value of each header, dashes turned into underscores),
 * `Http_Method`, `Http_ContentLength` and `Http_Content_Length`, `Http_Transfer_Encoding`,
 * `Http_Query` (when there is one), `Http_Path` and `Http_Host`. A value whose bytes are UTF-8
 * is that text (the function gets the bytes that came, as from Go's watchdog).
 */
export function cgiEnvironment(req: IncomingMessage): Record<string, string> {
  const env: Record<string, string> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const key = `Http_${canonicalHeaderName(raw[i] ?? '').replaceAll('-', '_')}`;
    if (!(key in env)) env[key] = headerText(raw[i + 1] ?? '');
  }
  const url = req.url ?? '/';
  const queryAt = url.indexOf('?');
  const contentLength =
    req.headers['content-length'] ?? (req.headers['transfer-encoding'] ? '-1' : '0');
  env.Http_Method = req.method ?? 'GET';
  env.Http_ContentLength = contentLength;
  env.Http_Content_Length = contentLength;
  if (req.headers['transfer-encoding'])
    env.Http_Transfer_Encoding = req.headers['transfer-encoding'];
  if (queryAt >= 0 && queryAt < url.length - 1) env.Http_Query = url.slice(queryAt + 1);
  env.Http_Path = queryAt >= 0 ? url.slice(0, queryAt) : url;
  if (req.headers.host) env.Http_Host = req.headers.host;
  return env;
}

/** The JSON that `marshal_request` puts on stdin: `{"header":{..},"body":{"raw":"<base64>"}}`. */
export function marshalRequest(req: IncomingMessage, body: Buffer): Buffer {
  const header: Record<string, string[]> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = canonicalHeaderName(raw[i] ?? '');
    (header[name] ??= []).push(headerText(raw[i + 1] ?? ''));
  }
  return Buffer.from(JSON.stringify({ header, body: { raw: body.toString('base64') } }));
}
