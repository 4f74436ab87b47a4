import { readFileSync } from 'node:fs';
import { parseDurationMs } from './duration.js';
import { ConfigError } from './errors.js';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads typed settings from an environment and collects every problem instead of stopping at
 * the first, so one run tells an operator everything that is wrong. Each binary's
 * `readConfig(env)` reads its variables through one of these and ends with `done()`.
 *
 * Empty values count as unset, as they do in OpenFaaS (`fprocess=` is "no fprocess").
 */
export class EnvReader {
  readonly #env: Env;
  readonly #problems: string[] = [];

  constructor(env: Env) {
    this.#env = env;
  }

  /** The raw value of the first of `names` that is set and not empty. */
  raw(...names: string[]): { name: string; value: string } | undefined {
    for (const name of names) {
      const value = this.#env[name];
      if (value !== undefined && value.trim() !== '') return { name, value };
    }
    return undefined;
  }

  string(name: string | readonly string[], fallback: string): string;
  string(name: string | readonly string[]): string | undefined;
  string(name: string | readonly string[], fallback?: string): string | undefined {
    return this.raw(...names(name))?.value ?? fallback;
  }

  /** A duration in milliseconds: `10s`, `1m30s`, `500ms`, or bare seconds. */
  durationMs(name: string | readonly string[], fallbackMs: number): number {
    const found = this.raw(...names(name));
    if (!found) return fallbackMs;
    const ms = parseDurationMs(found.value);
    if (ms === undefined) {
      this.problem(
        `${found.name}: "${found.value}" is not a duration (use e.g. 10s, 1m30s, 500ms or a number of seconds)`,
      );
      return fallbackMs;
    }
    return ms;
  }

  /** `true`/`1` and `false`/`0` (any case); anything else is a problem. */
  boolean(name: string | readonly string[], fallback: boolean): boolean {
    const found = this.raw(...names(name));
    if (!found) return fallback;
    const value = found.value.trim().toLowerCase();
    if (value === 'true' || value === '1') return true;
    if (value === 'false' || value === '0') return false;
    this.problem(`${found.name}: "${found.value}" is not a boolean (use true, false, 1 or 0)`);
    return fallback;
  }

  /** A whole number within [min, max]. */
  integer(
    name: string | readonly string[],
    fallback: number,
    { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = {},
  ): number {
    const found = this.raw(...names(name));
    if (!found) return fallback;
    const value = found.value.trim();
    const parsed = /^-?\d+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      this.problem(
        `${found.name}: "${found.value}" is not a whole number${describeRange(min, max)}`,
      );
      return fallback;
    }
    return parsed;
  }

  /** One of a fixed set of words. */
  oneOf<T extends string>(name: string | readonly string[], choices: readonly T[], fallback: T): T {
    const found = this.raw(...names(name));
    if (!found) return fallback;
    const value = found.value.trim();
    if ((choices as readonly string[]).includes(value)) return value as T;
    this.problem(`${found.name}: "${found.value}" is not one of ${choices.join(', ')}`);
    return fallback;
  }

  /** A comma-separated list: its parts, trimmed, empty ones skipped; none when unset. */
  list(name: string | readonly string[]): string[] {
    return (this.raw(...names(name))?.value ?? '')
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== '');
  }

  /**
   * The text of the file a setting names (a credential, a certificate); a problem naming the
   * setting, not the path, when it cannot be read.
   */
  fileText(name: string): string | undefined {
    const path = this.string(name);
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch {
      this.problem(`${name}: the file cannot be read`);
      return undefined;
    }
  }

  /** Records a problem that a check outside this reader found. */
  problem(message: string): void {
    this.#problems.push(message);
  }

  /** The finished config, frozen; throws one ConfigError naming every problem found. */
  done<T extends object>(config: T): Readonly<T> {
    if (this.#problems.length > 0) throw new ConfigError([...this.#problems]);
    return Object.freeze(config);
  }
}

/**
 * The names of one of fnbus's own settings (one OpenFaaS has no name for): `FNBUS_<NAME>`, then
 * the lowercase name fnbus 0.1 documented, still read so a setting made then keeps working.
 */
export function fnbusName(name: string): readonly [string, string] {
  return [`FNBUS_${name.toUpperCase()}`, name];
}

function names(name: string | readonly string[]): string[] {
  return typeof name === 'string' ? [name] : [...name];
}

function describeRange(min: number, max: number): string {
  const noMin = min === Number.MIN_SAFE_INTEGER;
  const noMax = max === Number.MAX_SAFE_INTEGER;
  if (noMin && noMax) return '';
  if (noMax) return ` >= ${min}`;
  if (noMin) return ` <= ${max}`;
  return ` between ${min} and ${max}`;
}
