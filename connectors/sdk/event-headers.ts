import { utf8HeaderValue } from '../../core/http-headers.js';
import { isHttpToken } from '../../core/http-request-check.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A broker's value as a header value carrying its UTF-8; undefined for bytes that are not UTF-8 or text a header cannot carry. */
function asHeaderText(value: string | Uint8Array): string | undefined {
  if (typeof value === 'string') return utf8HeaderValue(value);
  try {
    return utf8HeaderValue(utf8.decode(value));
  } catch {
    return undefined;
  }
}

/**
 * Sets header `name` to a broker's value (a Kafka key or record header, an MQTT 5 user property,
 * a NATS header): UTF-8 text goes as its bytes (utf8HeaderValue), anything else (bytes that are
 * not UTF-8, text with a control character) as base64, with `<name>-Enc: b64` saying so. The
 * function always gets the value, and the call can always be sent.
 */
export function setBrokerHeader(
  headers: Record<string, string>,
  name: string,
  value: string | Uint8Array,
): void {
  const text = asHeaderText(value);
  if (text !== undefined) {
    headers[name] = text;
    return;
  }
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  headers[name] = bytes.toString('base64');
  headers[`${name}-Enc`] = 'b64';
}

/** A broker's header name as `<prefix><name>`, or undefined when no HTTP header can be named so. */
export function brokerHeaderName(prefix: string, name: string): string | undefined {
  return isHttpToken(name) ? `${prefix}${name}` : undefined;
}

/**
 * Sets a broker's header (Kafka's, NATS's) on a call: one named content-type as `Content-Type`
 * (when it is text a header can carry), any other as `<prefix><name>` (setBrokerHeader); a name
 * no HTTP header can have is skipped.
 */
export function addBrokerHeader(
  headers: Record<string, string>,
  prefix: string,
  name: string,
  value: string | Uint8Array,
): void {
  if (name.toLowerCase() === 'content-type') {
    const type = asHeaderText(value);
    if (type !== undefined) headers['Content-Type'] = type;
    return;
  }
  const header = brokerHeaderName(prefix, name);
  if (header !== undefined) setBrokerHeader(headers, header, value);
}

/** A broker's content type as a `Content-Type` value, when it is text a header can carry. */
export function contentTypeHeader(value: string | Uint8Array): string | undefined {
  return asHeaderText(value);
}
