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

/**
 * A call's headers as an HTTP client sends them on, for fnbus's own clients (the queue worker,
 * callbacks): without hop-by-hop headers, nor `host` and `content-length`, which the client
 * sets for its own connection and body.
 */
export function headersToSend(
  headers: Readonly<Record<string, string | string[]>>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!hopByHopHeaders.has(lower) && lower !== 'host' && lower !== 'content-length') {
      out[name] = value;
    }
  }
  return out;
}
