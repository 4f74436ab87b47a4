import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isMap } from 'yaml';
import { assertDnsLabel } from '../core/function-name.js';
import type { FunctionResources, StringMap } from '../core/function-types.js';
import { envsubst, EnvsubstError } from './envsubst.js';
import { StackError } from './stack-error.js';
import { field, isNull, Position, reason, StackReader, type Entry } from './stack-reader.js';

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
  const reader: StackReader = new StackReader(source, file);
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
  reader: StackReader,
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
  stackReader: StackReader,
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
  const reader: StackReader = new StackReader(text, display);
  const root = reader.root();
  if (isNull(root)) return {};
  const entries = reader.entries(root, '');
  reader.onlyKeys(entries, '', ['environment']);
  return reader.stringMap(entries.get('environment')?.value, 'environment') ?? {};
}
