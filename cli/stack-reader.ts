import path from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Scalar } from 'yaml';
import type { FunctionResources, StringMap } from '../core/function-types.js';
import { StackError } from './stack-error.js';

export interface Entry {
  key: unknown;
  value: unknown;
}

/** Guards against alias bombs ("billion laughs"): our walk expands aliases itself. */
const maxAliases = 1000;

/**
 * Walks one parsed YAML document, turning nodes into values or StackErrors that give the file,
 * line and column of the node at fault. Knows YAML, not the stack schema (stack.ts).
 */
export class StackReader {
  readonly #doc: Document.Parsed;
  readonly #lines: LineCounter;
  readonly #file: string | undefined;
  #aliases = 0;

  constructor(text: string, file: string | undefined) {
    this.#file = file;
    this.#lines = new LineCounter();
    this.#doc = parseDocument(text, {
      lineCounter: this.#lines,
      keepSourceTokens: true,
      merge: true,
      prettyErrors: false,
      uniqueKeys: true,
    });
    const [error] = this.#doc.errors;
    if (error) {
      const { line, col } = this.#lines.linePos(error.pos[0]);
      throw new StackError({ file, line, column: col }, error.message, { cause: error });
    }
  }

  root(): unknown {
    return this.resolve(this.#doc.contents);
  }

  position(node: unknown): { line: number; col: number } {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return this.#lines.linePos(range ? range[0] : 0);
  }

  fail(node: unknown, field: string | undefined, message: string, cause?: unknown): never {
    const { line, col } = this.position(node ?? this.#doc.contents);
    throw new StackError(
      { file: this.#file, field: field || undefined, line, column: col },
      message,
      cause === undefined ? undefined : { cause },
    );
  }

  resolve(node: unknown): unknown {
    if (!isAlias(node)) return node;
    if (++this.#aliases > maxAliases) this.fail(node, undefined, 'too many aliases');
    return node.resolve(this.#doc);
  }

  /** The entries of a map node by key, with `<<` merge keys expanded (explicit keys win). */
  entries(node: unknown, at: string): Map<string, Entry> {
    const map = this.resolve(node);
    if (!isMap(map)) this.fail(node, at, `must be a map, not ${describe(map)}`);
    const entries = new Map<string, Entry>();
    const merged: Map<string, Entry>[] = [];
    for (const pair of map.items) {
      if (isScalar(pair.key) && typeof pair.key.value === 'symbol') {
        // With `merge: true` the yaml library marks a plain `<<` key with a symbol.
        const value = this.resolve(pair.value);
        const sources = isSeq(value) ? value.items : [value];
        for (const item of sources) merged.push(this.entries(item, at));
        continue;
      }
      const key = this.resolve(pair.key);
      if (!isScalar(key) || key.value === null) {
        this.fail(pair.key, at, `keys must be names, not ${describe(key)}`);
      }
      entries.set(scalarText(key), { key: pair.key, value: pair.value });
    }
    for (const more of merged) {
      for (const [key, entry] of more) if (!entries.has(key)) entries.set(key, entry);
    }
    return entries;
  }

  onlyKeys(entries: Map<string, Entry>, at: string, known: readonly string[]): void {
    for (const [key, entry] of entries) {
      if (known.includes(key) || key.startsWith('x-')) continue;
      const guess = closest(key, known);
      this.fail(
        entry.key,
        field(at, key),
        guess
          ? `unknown field (did you mean "${guess}"?)`
          : `unknown field; known fields: ${known.join(', ')}`,
      );
    }
  }

  /** A scalar as Go's yaml decodes it into a string: plain scalars keep their text (`1.0`). */
  string(node: unknown, at: string): string | undefined {
    const value = this.resolve(node);
    if (isNull(value)) return undefined;
    if (!isScalar(value)) this.fail(node, at, `must be a single value, not ${describe(value)}`);
    return scalarText(value);
  }

  items(node: unknown, at: string): unknown[] {
    const value = this.resolve(node);
    if (isNull(value)) return [];
    if (!isSeq(value)) this.fail(node, at, `must be a list, not ${describe(value)}`);
    return value.items;
  }

  /** A map of names to single values; a null value is "" as in Go's map[string]string. */
  stringMap(node: unknown, at: string): StringMap | undefined {
    if (isNull(this.resolve(node))) return undefined;
    const pairs: [string, string][] = [];
    for (const [key, entry] of this.entries(node, at)) {
      pairs.push([key, this.string(entry.value, field(at, key)) ?? '']);
    }
    // fromEntries defines own properties, so a key such as `__proto__` is just a key.
    return Object.fromEntries(pairs);
  }

  resources(node: unknown, at: string): FunctionResources | undefined {
    if (isNull(this.resolve(node))) return undefined;
    const entries = this.entries(node, at);
    this.onlyKeys(entries, at, ['memory', 'cpu']);
    const resources: FunctionResources = {};
    const memory = this.string(entries.get('memory')?.value, `${at}.memory`);
    const cpu = this.string(entries.get('cpu')?.value, `${at}.cpu`);
    if (memory) resources.memory = memory;
    if (cpu) resources.cpu = cpu;
    return memory || cpu ? resources : undefined;
  }

  /** YAML's true/false, and yes/no/on/off, which Go's yaml also takes for a bool field. */
  boolean(node: unknown, at: string): boolean {
    const value = this.resolve(node);
    if (isNull(value)) return false;
    if (isScalar(value)) {
      if (typeof value.value === 'boolean') return value.value;
      const text = typeof value.value === 'string' && value.type === 'PLAIN' ? value.value : '';
      if (/^(yes|on)$/i.test(text)) return true;
      if (/^(no|off)$/i.test(text)) return false;
    }
    return this.fail(node, at, `must be true or false, not ${describe(value)}`);
  }

  /**
   * `relative` resolved against `dir`, refusing anything outside it (`../../etc`, `/etc`): such a
   * path would be copied into a build context.
   */
  inside(dir: string, relative: string, node: unknown, at: string): string {
    const resolved = path.resolve(dir, relative);
    const rel = path.relative(dir, resolved);
    if (rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
      this.fail(node, at, `"${relative}" is outside the stack file's folder`);
    }
    return resolved;
  }
}

export function isNull(node: unknown): boolean {
  return node === undefined || node === null || (isScalar(node) && node.value === null);
}

export function scalarText(node: Scalar): string {
  if (node.value === null) return '';
  if (node.type === 'PLAIN' && node.source !== undefined) return node.source;
  const value: unknown = node.value;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return String(value);
  }
  return node.source ?? '';
}

function describe(node: unknown): string {
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isNull(node)) return 'empty';
  if (isScalar(node)) return `"${scalarText(node)}"`;
  return 'that';
}

/** `parent.key`, or `parent["key.with.dots"]` when the key would be ambiguous. */
export function field(parent: string, key: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(key)) return parent ? `${parent}.${key}` : key;
  return `${parent}[${JSON.stringify(key)}]`;
}

export function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The known key at edit distance 1 or 2 from `key`, to suggest for a typo. */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = distance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** Line and column (1-based) of an offset in text that has not been parsed. */
export class Position {
  readonly #counter = new LineCounter();

  constructor(text: string) {
    this.#counter.addNewLine(0);
    let at = text.indexOf('\n');
    while (at !== -1) {
      this.#counter.addNewLine(at + 1);
      at = text.indexOf('\n', at + 1);
    }
  }

  at(offset: number): { line: number; col: number } {
    return this.#counter.linePos(offset);
  }
}
