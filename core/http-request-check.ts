/**
 * Whether a call can go on the wire as fnbus's own HTTP clients send it (the queue worker, the
 * callbacks): every way a call comes in (async submit, a posted dead letter, a stored message
 * replayed) is checked here, so that what one way lets in another can send. A call that fails
 * these checks never can be sent, however often it is tried.
 */

/** An RFC 9110 token (method, header name): `!#$%&'*+-.^_`|~`, digits and letters. */
const token = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** An RFC 9110 field value: visible ASCII and obs-text, with spaces and tabs; no CR, LF or NUL. */
const fieldValue = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * A raw (percent-encoded) path: visible ASCII but `?` and `#` (they end a path), and each `%`
 * the start of an escape. Decoded text (a space, a CR) or non-ASCII cannot be sent as is.
 */
const rawPath = /^\/(?:[\x21\x22\x24\x26-\x3e\x40-\x7e]|%[0-9A-Fa-f]{2})*$/;

/** A raw query string: visible ASCII but `#`. */
const rawQuery = /^[\x21-\x22\x24-\x7e]*$/;

/** Methods that are not a call to a function: a proxy tunnel, and a loop-back probe. */
const refusedMethods: ReadonlySet<string> = new Set(['CONNECT', 'TRACE']);

/** Whether `text` is an RFC 9110 token: a method or a header name an HTTP request can carry. */
export function isHttpToken(text: string): boolean {
  return token.test(text);
}

/** Whether `text` is a header value an HTTP request can carry (no CR, LF, NUL; Latin-1 at most). */
export function isFieldValue(text: string): boolean {
  return fieldValue.test(text);
}

/** How a text shows in a problem: quoted, its control characters escaped, cut short. */
function shown(text: string): string {
  const cut = text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return JSON.stringify(cut);
}

/** What is wrong with a method; undefined when it can be sent. */
export function methodProblem(method: unknown): string | undefined {
  if (typeof method !== 'string' || !isHttpToken(method)) {
    return `method ${shown(String(method))} is not an HTTP token`;
  }
  if (refusedMethods.has(method.toUpperCase())) return `method ${method} is not a function call`;
  return undefined;
}

/**
 * What is wrong with a path after a function's name, raw as it is sent (`/orders/a%20b`); `''`
 * is none. Undefined when it can be sent.
 */
export function pathProblem(path: unknown): string | undefined {
  if (path === '') return undefined;
  if (typeof path !== 'string' || !rawPath.test(path)) {
    return `path ${shown(String(path))} is not a percent-encoded path starting with /`;
  }
  return undefined;
}

/** What is wrong with a raw query string (without `?`); undefined when it can be sent. */
export function queryProblem(query: unknown): string | undefined {
  if (typeof query !== 'string' || !rawQuery.test(query)) {
    return `query ${shown(String(query))} has characters that must be percent-encoded`;
  }
  return undefined;
}

/** What is wrong with each header: names RFC 9110 tokens, values without CR, LF or NUL. */
export function headerProblems(headers: unknown): string[] {
  const problems: string[] = [];
  addHeaderProblems(headers, problems);
  return problems;
}

/** headerProblems, added to `problems`: on every call's path, so nothing is made when all is well. */
function addHeaderProblems(headers: unknown, problems: string[]): void {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
    problems.push('headers are not a map of names to values');
    return;
  }
  const map = headers as Record<string, unknown>;
  for (const name in map) {
    if (!Object.hasOwn(map, name)) continue;
    if (!isHttpToken(name)) {
      problems.push(`header name ${shown(name)} is not an HTTP token`);
      continue;
    }
    if (!isSendableValue(map[name])) {
      problems.push(`header ${name}: a value has a character a header cannot carry (CR, LF, NUL…)`);
    }
  }
}

/** A header's value, or each of its values, a string a header can carry. */
function isSendableValue(value: unknown): boolean {
  if (!Array.isArray(value)) return typeof value === 'string' && isFieldValue(value);
  for (const one of value as unknown[]) {
    if (typeof one !== 'string' || !isFieldValue(one)) return false;
  }
  return true;
}

/** An HTTP call as fnbus replays it: what `requestProblems` checks. */
export interface SendableParts {
  method: unknown;
  /** Raw, after the function's name; `''` for none. */
  path: unknown;
  /** Raw, without `?`; `''` for none. */
  query: unknown;
  headers: unknown;
}

/** Every reason the call cannot be sent, at once; empty when it can. */
export function requestProblems(parts: SendableParts): string[] {
  const problems: string[] = [];
  const method = methodProblem(parts.method);
  if (method !== undefined) problems.push(method);
  const path = pathProblem(parts.path);
  if (path !== undefined) problems.push(path);
  const query = queryProblem(parts.query);
  if (query !== undefined) problems.push(query);
  addHeaderProblems(parts.headers, problems);
  return problems;
}
