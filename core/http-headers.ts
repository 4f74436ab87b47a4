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

/** Characters no header value can carry: controls but tab (CR, LF and NUL among them), DEL. */
// eslint-disable-next-line no-control-regex
const headerControls = /[\0-\x08\n-\x1f\x7f]/;
const nonAscii = /[^\0-\x7f]/;
const highBytes = /[\x80-\xff]/;

/**
 * Text as a header value whose bytes on the wire are its UTF-8 (what Go's clients send, so what
 * OpenFaaS's connectors send): non-ASCII text becomes its UTF-8 bytes, one Latin-1 character
 * each, as node's HTTP writers take them. Undefined when the text has a character no header can
 * carry (a control: CR, LF, NUL...).
 */
export function utf8HeaderValue(text: string): string | undefined {
  if (headerControls.test(text)) return undefined;
  return nonAscii.test(text) ? Buffer.from(text, 'utf8').toString('latin1') : text;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A header value as node parsed it (each byte one Latin-1 character) back to the text its bytes
 * are when they are UTF-8 (utf8HeaderValue's reverse); as it is otherwise.
 */
export function headerText(value: string): string {
  if (!highBytes.test(value)) return value;
  try {
    return strictUtf8.decode(Buffer.from(value, 'latin1'));
  } catch {
    return value;
  }
}
