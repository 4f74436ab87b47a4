/**
 * Headers that describe one connection rather than the message, so a proxy never forwards them
 * (RFC 9110 §7.6.1); `expect` is answered by the hop that receives it.
 */
export const hopByHopHeaders: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
]);

/** Never sent on by fnbus's own clients: hop-by-hop, and what a client sets for itself. */
export const notSentOn: ReadonlySet<string> = new Set([
  ...hopByHopHeaders,
  'host',
  'content-length',
]);

/**
 * A call's headers as an HTTP client sends them on, for fnbus's own clients (the queue worker,
 * callbacks): without hop-by-hop headers, nor `host` and `content-length`, which the client
 * sets for its own connection and body.
 */
export function headersToSend(
  headers: Readonly<Record<string, string | string[]>>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  // for-in, not Object.entries: these run for every call, and entries() allocates a pair each.
  for (const name in headers) {
    if (!notSentOn.has(name.toLowerCase())) out[name] = headers[name] as string | string[];
  }
  return out;
}

/** The first value of header `name`, names compared without regard to case. */
export function headerValue(
  headers: Readonly<Record<string, string | string[] | undefined>> | undefined,
  name: string,
): string | undefined {
  if (!headers) return undefined;
  const exact = headers[name];
  if (exact !== undefined) return Array.isArray(exact) ? exact[0] : exact;
  const wanted = name.toLowerCase();
  for (const key in headers) {
    if (key.length !== wanted.length || key.toLowerCase() !== wanted) continue;
    const value = headers[key];
    return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}
