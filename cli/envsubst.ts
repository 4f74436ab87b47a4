import { ValidationError } from '../core/errors.js';

/** A substitution that cannot be expanded; `offset` is where it starts in the text. */
export class EnvsubstError extends ValidationError {
  readonly offset: number;

  constructor(message: string, offset: number) {
    super(message);
    this.offset = offset;
  }
}

const nameStart = /[A-Za-z_]/;
const nameChar = /[A-Za-z0-9_]/;
const braced = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=])([\s\S]*))?$/;

/**
 * Expands `$VAR`, `${VAR}` and `${VAR:-default}` in `text` as faas-cli's `--envsubst` does (it
 * uses drone/envsubst): a missing variable becomes "", `$$` is a literal `$`, and a `$` that
 * starts no name stays as it is. Defaults: `:-` / `:=` apply when the variable is unset or
 * empty, `-` / `=` only when it is unset (nothing is assigned: the text is all we change); a
 * default may itself hold substitutions. drone's string operators (`${VAR^^}`, `${VAR/a/b}`,
 * `${#VAR}`, ...) are refused rather than silently left half-expanded.
 */
export function envsubst(text: string, env: Readonly<Record<string, string | undefined>>): string {
  return expand(text, 0, env);
}

function expand(
  text: string,
  base: number,
  env: Readonly<Record<string, string | undefined>>,
): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar === -1) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, dollar);
    const next = text[dollar + 1];
    if (next === '$') {
      out += '$';
      i = dollar + 2;
    } else if (next === '{') {
      const close = matchingBrace(text, dollar + 2);
      if (close === -1) throw new EnvsubstError('unterminated "${": missing "}"', base + dollar);
      out += substitute(text.slice(dollar + 2, close), base + dollar, base + dollar + 2, env);
      i = close + 1;
    } else if (next !== undefined && nameStart.test(next)) {
      let end = dollar + 2;
      while (end < text.length && nameChar.test(text[end] ?? '')) end++;
      out += env[text.slice(dollar + 1, end)] ?? '';
      i = end;
    } else {
      out += '$';
      i = dollar + 1;
    }
  }
  return out;
}

/** Index of the `}` that closes a `${` whose body starts at `from`, counting nested `${`. */
function matchingBrace(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '$' && text[i + 1] === '{') {
      depth++;
      i++;
    } else if (c === '}' && --depth === 0) {
      return i;
    } else if (c === '\n') {
      // A substitution never spans lines; stopping here points the error at the right line.
      return -1;
    }
  }
  return -1;
}

function substitute(
  body: string,
  at: number,
  bodyAt: number,
  env: Readonly<Record<string, string | undefined>>,
): string {
  const match = braced.exec(body);
  if (!match) {
    throw new EnvsubstError(
      `unsupported substitution "\${${body}}": use \${NAME}, \${NAME:-default} or \${NAME-default}`,
      at,
    );
  }
  const [, name = '', operator, fallback = ''] = match;
  const value = env[name];
  if (operator === undefined) return value ?? '';
  const useDefault = operator.startsWith(':') ? !value : value === undefined;
  if (!useDefault) return value ?? '';
  return expand(fallback, bodyAt + name.length + operator.length, env);
}
