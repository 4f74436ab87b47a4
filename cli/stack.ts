import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Scalar } from 'yaml';
import { ValidationError } from '../core/errors.js';
import { assertDnsLabel } from '../core/function-name.js';
import type { FunctionDeployment, FunctionResources, StringMap } from '../core/function-types.js';
import { envsubst, EnvsubstError } from './envsubst.js';

/**
 * A faas-cli `stack.yml` (reference/openfaas.md §5.1; faas-cli's go-sdk `stack/schema.go`), read
 * the way faas-cli reads it, with one deliberate difference: an unknown field is an error that
 * names it. faas-cli (yaml.Unmarshal, not strict) silently drops unknown keys, so a typo such as
 * `enviroment:` deploys a function without its environment; every field the faas-cli schema
 * defines is accepted, so any stack file faas-cli understands still loads here. Keys starting with
 * `x-` are ignored, as in compose files, to hold YAML anchors (`x-env: &env {...}`).
 */
export interface Stack {
  /** Display name of the stack file, when read from one: used in error messages. */
  file: string | undefined;
  /** The folder that handler, environment_file and copy paths are relative to. */
  stackDir: string;
  version: '1.0' | undefined;
  provider: StackProvider;
  /** By function name (the map key), in file order. */
  functions: Record<string, StackFunction>;
  configuration: StackConfiguration;
}

export interface StackProvider {
  name: 'openfaas' | 'fnbus';
  gateway: string | undefined;
  /** Docker Swarm network of old faas-cli stacks; kept, unused. */
  network: string | undefined;
}

export interface StackConfiguration {
  templates: StackTemplateSource[];
  /** Extra paths (relative to the stack folder, never outside it) copied into build contexts. */
  copy: string[];
}

export interface StackTemplateSource {
  name: string;
  source: string | undefined;
  path: string | undefined;
}

export interface StackFunction {
  name: string;
  /** Line of the function's key in the stack file, for messages about it later. */
  line: number;
  /** The template; faas-cli's `Dockerfile` is normalised to `dockerfile`. */
  lang: string | undefined;
  /** As written in the file. */
  handler: string | undefined;
  /** `handler` resolved against the stack folder; always inside it. */
  handlerPath: string | undefined;
  image: string | undefined;
  fprocess: string | undefined;
  /** The inline `environment` map only. */
  environment: StringMap;
  /** As written in the file. */
  environmentFile: string[];
  /** The `environment:` maps of the environment files, merged in order (a later file wins). */
  environmentFromFiles: StringMap;
  secrets: string[];
  labels: StringMap | undefined;
  annotations: StringMap | undefined;
  constraints: string[] | undefined;
  limits: FunctionResources | undefined;
  requests: FunctionResources | undefined;
  readOnlyRootFilesystem: boolean;
  namespace: string | undefined;
  skipBuild: boolean;
  buildArgs: StringMap;
  buildOptions: string[];
  buildSecrets: StringMap;
  platforms: string | undefined;
  registryAuth: string | undefined;
}

export interface ParseStackOptions {
  /** Variables for `${VAR}` substitution. */
  env: Readonly<Record<string, string | undefined>>;
  /** Reads an environment file; given its absolute path (resolved against `stackDir`). */
  readFile: (path: string) => string;
  stackDir: string;
  /** The stack file's name as the user gave it, for error messages. */
  file?: string;
  /** faas-cli's `--envsubst` (default true). */
  envsubst?: boolean;
}

/**
 * A stack file that cannot be used. The message is one line,
 * `stack.yml:12:7: functions.hello.environment: must be a map, not a list`; the parts are kept
 * as fields too.
 */
export class StackError extends ValidationError {
  readonly file: string | undefined;
  readonly field: string | undefined;
  readonly line: number | undefined;
  readonly column: number | undefined;

  constructor(
    where: { file?: string; field?: string; line?: number; column?: number },
    message: string,
    options?: ErrorOptions,
  ) {
    const position =
      where.line === undefined ? '' : `${where.line}${where.column ? `:${where.column}` : ''}`;
    const prefix =
      where.file !== undefined
        ? `${where.file}${position ? `:${position}` : ''}: `
        : position
          ? `line ${position}: `
          : '';
    super(`${prefix}${where.field ? `${where.field}: ` : ''}${message}`, options);
    this.file = where.file;
    this.field = where.field;
    this.line = where.line;
    this.column = where.column;
  }
}

/** Reads `file` and parses it with parseStack; environment files are read from disk too. */
export function loadStack(file: string, env: Readonly<Record<string, string | undefined>>): Stack {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new StackError({ file }, `cannot read the stack file: ${reason(error)}`, {
      cause: error,
    });
  }
  return parseStack(text, {
    env,
    file,
    stackDir: path.dirname(path.resolve(file)),
    readFile: (p) => readFileSync(p, 'utf8'),
  });
}

/** Parses and validates a stack file's text. Throws a StackError (a ValidationError). */
export function parseStack(text: string, options: ParseStackOptions): Stack {
  const { file, stackDir } = options;
  let source = text;
  if (options.envsubst !== false) {
    try {
      source = envsubst(text, options.env);
    } catch (error) {
      if (!(error instanceof EnvsubstError)) throw error;
      const { line, col } = new Position(text).at(error.offset);
      throw new StackError({ file, line, column: col }, error.message, { cause: error });
    }
  }
  const reader: Reader = new Reader(source, file);
  const root = reader.root();
  if (!isMap(root)) {
    reader.fail(root, undefined, 'a stack file must be a map with "provider" and "functions"');
  }
  const top = reader.entries(root, '');
  reader.onlyKeys(top, '', ['version', 'provider', 'functions', 'configuration']);

  const versionEntry = top.get('version');
  const version = versionEntry && reader.string(versionEntry.value, 'version');
  if (version !== undefined && version !== '1.0') {
    reader.fail(versionEntry?.value, 'version', `only "1.0" is valid, not "${version}"`);
  }

  const providerEntry = top.get('provider');
  if (!providerEntry || isNull(providerEntry.value)) {
    reader.fail(
      providerEntry?.key ?? root,
      'provider',
      'missing: add `provider: {name: openfaas}`',
    );
  }
  const provider = reader.entries(providerEntry.value, 'provider');
  reader.onlyKeys(provider, 'provider', ['name', 'gateway', 'network']);
  const providerName = provider.get('name');
  const name = providerName && reader.string(providerName.value, 'provider.name');
  if (name !== 'openfaas' && name !== 'fnbus') {
    reader.fail(
      providerName?.value ?? providerEntry.value,
      'provider.name',
      `must be "openfaas" or "fnbus"${name === undefined ? '' : `, not "${name}"`}`,
    );
  }

  const functionsEntry = top.get('functions');
  if (!functionsEntry || isNull(functionsEntry.value)) {
    reader.fail(
      functionsEntry?.key ?? root,
      'functions',
      'missing: a stack file needs a map of functions',
    );
  }
  const functions: [string, StackFunction][] = [];
  for (const [fnName, entry] of reader.entries(functionsEntry.value, 'functions')) {
    functions.push([fnName, readFunction(reader, fnName, entry, options)]);
  }

  const configuration: StackConfiguration = { templates: [], copy: [] };
  const configurationEntry = top.get('configuration');
  if (configurationEntry && !isNull(configurationEntry.value)) {
    const config = reader.entries(configurationEntry.value, 'configuration');
    reader.onlyKeys(config, 'configuration', ['templates', 'copy']);
    const templates = config.get('templates');
    if (templates) {
      reader.items(templates.value, 'configuration.templates').forEach((item, i) => {
        const field = `configuration.templates[${i}]`;
        const entries = reader.entries(item, field);
        reader.onlyKeys(entries, field, ['name', 'source', 'path']);
        const templateName = reader.string(entries.get('name')?.value, `${field}.name`);
        if (!templateName) reader.fail(item, `${field}.name`, 'missing: a template needs a name');
        configuration.templates.push({
          name: templateName,
          source: reader.string(entries.get('source')?.value, `${field}.source`),
          path: reader.string(entries.get('path')?.value, `${field}.path`),
        });
      });
    }
    const copy = config.get('copy');
    if (copy) {
      reader.items(copy.value, 'configuration.copy').forEach((item, i) => {
        const field = `configuration.copy[${i}]`;
        const entry = reader.string(item, field) ?? '';
        reader.inside(stackDir, entry, item, field);
        configuration.copy.push(entry);
      });
    }
  }

  return {
    file,
    stackDir,
    version: version === undefined ? undefined : '1.0',
    provider: {
      name,
      gateway: reader.string(provider.get('gateway')?.value, 'provider.gateway'),
      network: reader.string(provider.get('network')?.value, 'provider.network'),
    },
    functions: Object.fromEntries(functions),
    configuration,
  };
}

/**
 * The body faas-cli's `deploy` sends for one stack function (faas-cli `commands/deploy.go`,
 * `proxy/deploy.go`). envVars: the inline `environment` overlaid by the environment files, since
 * faas-cli merges `mergeMap(function.Environment, fileEnvironment)` and the file values win.
 * Limits and requests are left out when empty. Unlike faas-cli, an empty `fprocess` is not
 * looked up in the template's template.yml here: that is the build's business.
 */
export function toDeployment(name: string, fn: StackFunction, stack: Stack): FunctionDeployment {
  if (!fn.image) {
    throw new StackError(
      { file: stack.file, field: `functions.${name}.image`, line: fn.line },
      'missing: a function needs an image to be deployed',
    );
  }
  const deployment: FunctionDeployment = { service: name, image: fn.image };
  if (fn.namespace) deployment.namespace = fn.namespace;
  if (fn.fprocess) deployment.envProcess = fn.fprocess;
  const envVars = { ...fn.environment, ...fn.environmentFromFiles };
  if (Object.keys(envVars).length > 0) deployment.envVars = envVars;
  if (fn.constraints && fn.constraints.length > 0) deployment.constraints = [...fn.constraints];
  if (fn.secrets.length > 0) deployment.secrets = [...fn.secrets];
  if (fn.labels) deployment.labels = { ...fn.labels };
  if (fn.annotations) deployment.annotations = { ...fn.annotations };
  if (fn.limits) deployment.limits = { ...fn.limits };
  if (fn.requests) deployment.requests = { ...fn.requests };
  deployment.readOnlyRootFilesystem = fn.readOnlyRootFilesystem;
  return deployment;
}

const functionKeys = [
  'lang',
  'handler',
  'image',
  'registry_auth',
  'fprocess',
  'environment',
  'environment_file',
  'secrets',
  'skip_build',
  'constraints',
  'labels',
  'annotations',
  'limits',
  'requests',
  'readonly_root_filesystem',
  'build_options',
  'build_args',
  'build_secrets',
  'platforms',
  'namespace',
];

function readFunction(
  reader: Reader,
  name: string,
  entry: Entry,
  options: ParseStackOptions,
): StackFunction {
  const base = field('functions', name);
  try {
    assertDnsLabel(name);
  } catch (error) {
    reader.fail(entry.key, base, (error as Error).message, error);
  }
  const settings = reader.entries(entry.value, base);
  reader.onlyKeys(settings, base, functionKeys);
  const get = (key: string) => settings.get(key)?.value;
  const str = (key: string) => reader.string(get(key), `${base}.${key}`);
  const list = (key: string) =>
    reader
      .items(get(key), `${base}.${key}`)
      .map((item, i) => reader.string(item, `${base}.${key}[${i}]`) ?? '');
  const map = (key: string) => reader.stringMap(get(key), `${base}.${key}`);
  const present = (key: string) => !isNull(get(key));

  let lang = str('lang');
  if (lang?.toLowerCase() === 'dockerfile') lang = 'dockerfile';

  const handler = str('handler');
  const handlerPath =
    handler === undefined
      ? undefined
      : reader.inside(options.stackDir, handler, get('handler'), `${base}.handler`);

  const namespace = str('namespace');
  if (namespace) {
    try {
      assertDnsLabel(namespace, 'namespace');
    } catch (error) {
      reader.fail(get('namespace'), `${base}.namespace`, (error as Error).message, error);
    }
  }

  const environmentFile = list('environment_file');
  const environmentFromFiles: StringMap = {};
  reader.items(get('environment_file'), `${base}.environment_file`).forEach((item, i) => {
    const where = `${base}.environment_file[${i}]`;
    Object.assign(
      environmentFromFiles,
      readEnvironmentFile(reader, environmentFile[i] ?? '', item, where, options),
    );
  });

  return {
    name,
    line: reader.position(entry.key).line,
    lang,
    handler,
    handlerPath,
    image: str('image'),
    fprocess: str('fprocess'),
    environment: map('environment') ?? {},
    environmentFile,
    environmentFromFiles,
    secrets: list('secrets'),
    labels: map('labels'),
    annotations: map('annotations'),
    constraints: present('constraints') ? list('constraints') : undefined,
    limits: reader.resources(get('limits'), `${base}.limits`),
    requests: reader.resources(get('requests'), `${base}.requests`),
    readOnlyRootFilesystem: reader.boolean(
      get('readonly_root_filesystem'),
      `${base}.readonly_root_filesystem`,
    ),
    namespace: namespace || undefined,
    skipBuild: reader.boolean(get('skip_build'), `${base}.skip_build`),
    buildArgs: map('build_args') ?? {},
    buildOptions: list('build_options'),
    buildSecrets: map('build_secrets') ?? {},
    platforms: str('platforms'),
    registryAuth: str('registry_auth'),
  };
}

/**
 * An environment file: a YAML map with one `environment:` map, read relative to the stack folder
 * as faas-cli does. No `${VAR}` substitution, as in faas-cli. Unlike handlers, it may live outside
 * the stack folder (a shared secrets file, say): it is only read, never copied into an image.
 */
function readEnvironmentFile(
  stackReader: Reader,
  name: string,
  node: unknown,
  where: string,
  options: ParseStackOptions,
): StringMap {
  const resolved = path.resolve(options.stackDir, name);
  let text: string;
  try {
    text = options.readFile(resolved);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    stackReader.fail(
      node,
      where,
      missing
        ? `environment file "${name}" not found (looked for ${resolved})`
        : `cannot read environment file "${name}": ${reason(error)}`,
      error,
    );
  }
  const display = options.file === undefined ? name : path.join(path.dirname(options.file), name);
  const reader: Reader = new Reader(text, display);
  const root = reader.root();
  if (isNull(root)) return {};
  const entries = reader.entries(root, '');
  reader.onlyKeys(entries, '', ['environment']);
  return reader.stringMap(entries.get('environment')?.value, 'environment') ?? {};
}

interface Entry {
  key: unknown;
  value: unknown;
}

/** Guards against alias bombs ("billion laughs"): our walk expands aliases itself. */
const maxAliases = 1000;

/** Walks one parsed YAML document, turning nodes into values or positioned StackErrors. */
class Reader {
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

function isNull(node: unknown): boolean {
  return node === undefined || node === null || (isScalar(node) && node.value === null);
}

function scalarText(node: Scalar): string {
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
function field(parent: string, key: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(key)) return parent ? `${parent}.${key}` : key;
  return `${parent}[${JSON.stringify(key)}]`;
}

function reason(error: unknown): string {
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
class Position {
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
