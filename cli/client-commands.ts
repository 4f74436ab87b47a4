import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseDurationMs } from '../core/duration.js';
import { FnbusError, ValidationError } from '../core/errors.js';
import type {
  FunctionDeployment,
  FunctionStatus,
  Secret,
  StringMap,
} from '../core/function-types.js';
import type { GatewayInfo } from '../core/info-types.js';
import type { LogMessage } from '../core/log-types.js';
import { version as cliVersion } from '../watchdog/version.js';
import {
  GatewayClient,
  GatewayError,
  refusal,
  resolveGateway,
  type GatewayOptions,
} from '../client/gateway-client.js';
import { LocalImageStore, localImagesDir } from '../deploy/process/local-image-store.js';
import { buildStackFunction, stackDeployment, stackFunctionNames } from './stack-deployments.js';
import { loadStack } from './stack.js';

/**
 * The client commands (`deploy`, `list`, `describe`, `invoke`, `remove`, `scale`, `logs`,
 * `secret ...`, and `version`, which asks the gateway too): each talks to a gateway over HTTP, as faas-cli does (reference/openfaas.md §5.2). Every failure is a FnbusError,
 * which main.ts prints as one line before exiting 1.
 */
export function registerClientCommands(program: Command): void {
  gatewayOptions(
    program
      .command('deploy')
      .description(
        'deploy the functions of a stack file, or one image (--image, --name): PUT, then POST on 404',
      )
      .option('-f, --yaml <file>', 'the stack file (default: stack.yml, unless --image is given)')
      .option('--filter <name>', 'only the stack functions matching this name (* is a wildcard)')
      .option('--image <image>', 'deploy this image instead of a stack file')
      .option('--name <name>', 'the function name, with --image')
      .option('--fprocess <command>', 'the command the watchdog runs, with --image')
      .option('-e, --env <KEY=VALUE>', 'an environment variable (repeatable)', collect, [])
      .option('-l, --label <KEY=VALUE>', 'a label (repeatable)', collect, [])
      .option('--annotation <KEY=VALUE>', 'an annotation (repeatable)', collect, [])
      .option('--secret <name>', 'a secret to give the function (repeatable)', collect, [])
      .option('-n, --namespace <namespace>', 'the namespace, with --image'),
  ).action(deploy);

  gatewayOptions(
    program
      .command('list')
      .alias('ls')
      .description('list the deployed functions')
      .option('-v, --verbose', 'a table with image, invocations and replicas')
      .option('--json', 'the gateway’s JSON')
      .option('-n, --namespace <namespace>', 'the namespace'),
  ).action(list);

  gatewayOptions(
    program
      .command('describe <name>')
      .description('show a deployed function: status, replicas, invocations, image, process')
      .option('-n, --namespace <namespace>', 'the namespace'),
  ).action(describe);

  gatewayOptions(
    program
      .command('invoke <name>')
      .description('call a function with stdin as the body; its answer goes to stdout')
      .option('-m, --method <method>', 'the HTTP method', 'POST')
      .option('-H, --header <"K: V">', 'a request header (repeatable)', collect, [])
      .option('--query <k=v>', 'a query parameter (repeatable)', collect, [])
      .option('--content-type <type>', 'the Content-Type of the body', 'text/plain')
      .option('-a, --async', 'queue the call (/async-function); print its call id')
      .option('--callback-url <url>', 'with --async: where the answer is POSTed')
      .option('--idempotency-key <key>', 'with --async: queue it once per key')
      .option('-n, --namespace <namespace>', 'the namespace'),
  ).action(invoke);

  gatewayOptions(
    program
      .command('remove <name>')
      .alias('rm')
      .description('remove a deployed function')
      .option('-n, --namespace <namespace>', 'the namespace'),
  ).action(remove);

  gatewayOptions(
    program
      .command('scale <name>')
      .description('set the number of replicas of a function')
      .requiredOption('--replicas <n>', 'the number of replicas (0 or more)')
      .option('-n, --namespace <namespace>', 'the namespace'),
  ).action(scale);

  gatewayOptions(
    program
      .command('logs <name>')
      .description('print a function’s log lines; --follow streams new ones until Ctrl-C')
      .option('--follow', 'keep printing lines as they are written, until interrupted')
      .option('--tail <n>', 'only the last N lines')
      .option('--since <when>', 'only lines since a duration ago (10m, 1h30m) or an RFC 3339 time')
      .option('-o, --output <format>', 'text (TIMESTAMP NAME (INSTANCE) TEXT) or json', 'text')
      .option('--instance <id>', 'only the lines of this replica')
      .option('-n, --namespace <namespace>', 'the namespace'),
  ).action(logs);

  const secret = program
    .command('secret')
    .description('manage secrets: create, update, list, remove');
  for (const verb of ['create', 'update'] as const) {
    gatewayOptions(
      secret
        .command(`${verb} <name>`)
        .description(
          `${verb} a secret from --from-literal, --from-file or stdin (binary files go base64)`,
        )
        .option('--from-literal <value>', 'the value')
        .option('--from-file <path>', 'read the value from a file')
        .option('--no-trim', 'keep the whitespace around a literal or stdin value')
        .option('-n, --namespace <namespace>', 'the namespace'),
    ).action((name: string, options: SecretOptions) => writeSecret(verb, name, options));
  }
  gatewayOptions(
    secret
      .command('list')
      .alias('ls')
      .description('list the secrets’ names (never their values)')
      .option('-n, --namespace <namespace>', 'the namespace'),
  ).action(listSecrets);
  gatewayOptions(
    secret
      .command('remove <name>')
      .alias('rm')
      .description('remove a secret')
      .option('-n, --namespace <namespace>', 'the namespace'),
  ).action(removeSecret);

  gatewayOptions(
    program
      .command('version')
      .description('print the version, and the gateway’s and provider’s when one is reachable'),
  ).action(showVersion);
}

export function gatewayOptions(command: Command): Command {
  return command
    .option(
      '-g, --gateway <url>',
      'the gateway (default: $FNBUS_GATEWAY, else $OPENFAAS_URL, else http://127.0.0.1:8080)',
    )
    .option('--username <user>', 'basic-auth user (default: $FNBUS_USERNAME, else fnbus login’s)')
    .option(
      '--password <password>',
      'basic-auth password (default: $FNBUS_PASSWORD, else fnbus login’s)',
    )
    .option('--tls-no-verify', 'https: take any certificate');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function client(options: GatewayOptions, fallback?: string): GatewayClient {
  return new GatewayClient(resolveGateway(options, process.env, fallback));
}

export function print(text: string): void {
  process.stdout.write(text);
}

const pathName = (name: string) => encodeURIComponent(name);

interface DeployOptions extends GatewayOptions {
  yaml?: string;
  filter?: string;
  image?: string;
  name?: string;
  fprocess?: string;
  env: string[];
  label: string[];
  annotation: string[];
  secret: string[];
  namespace?: string;
}

async function deploy(options: DeployOptions): Promise<void> {
  if (options.image !== undefined) {
    if (options.yaml !== undefined) {
      throw new ValidationError('give either -f/--yaml or --image, not both');
    }
    if (!options.name) throw new ValidationError('--image needs --name');
    const deployment: FunctionDeployment = { service: options.name, image: options.image };
    if (options.namespace) deployment.namespace = options.namespace;
    if (options.fprocess) deployment.envProcess = options.fprocess;
    const envVars = pairs(options.env, '--env');
    if (envVars) deployment.envVars = envVars;
    const labels = pairs(options.label, '--label');
    if (labels) deployment.labels = labels;
    const annotations = pairs(options.annotation, '--annotation');
    if (annotations) deployment.annotations = annotations;
    if (options.secret.length > 0) deployment.secrets = [...options.secret];
    await deployOne(client(options), deployment);
    print(`deployed ${options.name}\n`);
    return;
  }
  const singleOnly = (['name', 'fprocess', 'namespace'] as const).filter((k) => options[k]);
  if (singleOnly.length > 0) {
    throw new ValidationError(`--${singleOnly[0]} goes with --image, not with a stack file`);
  }
  const stack = loadStack(options.yaml ?? 'stack.yml', process.env);
  const names = stackFunctionNames(stack, options.filter);
  // Every deployment is built (and checked) before the first call.
  const deployments = names.map((name) => stackDeployment(name, stack));
  const gateway = client(options, stack.provider.gateway);
  // Built for this machine's hubs first, as `fnbus build` does; a hub elsewhere runs the image.
  const images = new LocalImageStore(localImagesDir(process.env));
  for (const [index, deployment] of deployments.entries()) {
    await buildStackFunction(deployment.service, stack, images, (line) =>
      process.stderr.write(`${line}\n`),
    );
    await deployOne(gateway, deployment);
    print(`deployed ${deployment.service} (${index + 1}/${deployments.length})\n`);
  }
}

/** faas-cli's update-or-create: PUT /system/functions, POST when the PUT says 404. */
async function deployOne(gateway: GatewayClient, deployment: FunctionDeployment): Promise<void> {
  try {
    await gateway.system('PUT', '/system/functions', deployment);
  } catch (error) {
    if (!(error instanceof FnbusError) || error.status !== 404) throw error;
    await gateway.system('POST', '/system/functions', deployment);
  }
}

/** `K=V` flags as a map; undefined when there are none. */
function pairs(values: string[], flag: string): StringMap | undefined {
  if (values.length === 0) return undefined;
  const result: [string, string][] = [];
  for (const value of values) {
    const at = value.indexOf('=');
    if (at <= 0) throw new ValidationError(`${flag} takes KEY=VALUE, not "${value}"`);
    result.push([value.slice(0, at), value.slice(at + 1)]);
  }
  return Object.fromEntries(result);
}

interface ListOptions extends GatewayOptions {
  verbose?: boolean;
  json?: boolean;
  namespace?: string;
}

async function list(options: ListOptions): Promise<void> {
  const functions = await client(options).json<FunctionStatus[]>('/system/functions', {
    namespace: options.namespace,
  });
  functions.sort((a, b) => a.name.localeCompare(b.name));
  if (options.json) {
    print(`${JSON.stringify(functions, null, 2)}\n`);
    return;
  }
  if (!options.verbose) {
    print(functions.map((fn) => `${fn.name}\n`).join(''));
    return;
  }
  const rows = [
    ['FUNCTION', 'IMAGE', 'INVOCATIONS', 'REPLICAS', 'AVAILABLE'],
    ...functions.map((fn) => [
      fn.name,
      fn.image || '-',
      String(fn.invocationCount ?? 0),
      String(fn.replicas ?? 0),
      String(fn.availableReplicas ?? 0),
    ]),
  ];
  print(table(rows));
}

/** Rows (the first is the header) in columns two spaces apart. */
export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths?.[i] ?? 0)))
        .join('  '),
    )
    .map((line) => `${line}\n`)
    .join('');
}

async function describe(name: string, options: GatewayOptions & { namespace?: string }) {
  const gateway = client(options);
  const fn = await gateway.json<FunctionStatus>(`/system/function/${pathName(name)}`, {
    namespace: options.namespace,
  });
  const available = fn.availableReplicas ?? 0;
  const lines: [string, string][] = [
    ['Name', fn.name],
    ['Namespace', fn.namespace ?? ''],
    ['Status', available > 0 ? 'Ready' : 'Not Ready'],
    ['Replicas', String(fn.replicas ?? 0)],
    ['Available Replicas', String(available)],
    ['Invocations', String(fn.invocationCount ?? 0)],
    ['Image', fn.image || '-'],
    ['Function Process', fn.envProcess || '-'],
    ['Labels', formatMap(fn.labels)],
    ['Annotations', formatMap(fn.annotations)],
    ['Created', fn.createdAt],
  ];
  let text = lines.map(([key, value]) => `${`${key}:`.padEnd(20)}${value}\n`).join('');
  const info = await gateway.json<GatewayInfo>('/system/info');
  if (info.provider?.orchestration === 'process') {
    const what = fn.envProcess ? 'its Function Process' : 'what fnbus build made of the image';
    text += `\nNote: on the process provider the image is kept but not run: the function runs ${what}.\n`;
  }
  print(text);
}

function formatMap(map: StringMap | null | undefined): string {
  const entries = Object.entries(map ?? {});
  if (entries.length === 0) return '-';
  return entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

interface InvokeOptions extends GatewayOptions {
  method: string;
  header: string[];
  query: string[];
  contentType: string;
  namespace?: string;
  async?: boolean;
  callbackUrl?: string;
  idempotencyKey?: string;
}

async function invoke(name: string, options: InvokeOptions): Promise<void> {
  const headers: Record<string, string | string[]> = { 'content-type': options.contentType };
  for (const header of options.header) {
    const at = header.indexOf(':');
    if (at <= 0) throw new ValidationError(`--header takes "Name: value", not "${header}"`);
    const key = header.slice(0, at).trim().toLowerCase();
    const value = header.slice(at + 1).trim();
    const existing = headers[key];
    headers[key] =
      key === 'content-type' || existing === undefined
        ? value
        : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  const query: [string, string][] = options.query.map((pair) => {
    const at = pair.indexOf('=');
    if (at <= 0) throw new ValidationError(`--query takes key=value, not "${pair}"`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  });
  const method = options.method.toUpperCase();
  if (!options.async && (options.callbackUrl || options.idempotencyKey)) {
    throw new ValidationError('--callback-url and --idempotency-key go with --async');
  }
  if (options.callbackUrl) headers['x-callback-url'] = options.callbackUrl;
  if (options.idempotencyKey) headers['idempotency-key'] = options.idempotencyKey;
  const body = await readStdin();
  const target = options.namespace ? `${name}.${options.namespace}` : name;
  const route = options.async ? 'async-function' : 'function';
  const res = await client(options).call(method, `/${route}/${pathName(target)}`, {
    headers,
    query,
    ...(body.length > 0 || !['GET', 'HEAD'].includes(method) ? { body } : {}),
  });
  if (options.async && res.status === 202) {
    // The call id alone on stdout, for scripts: `id=$(fnbus invoke --async f)`.
    print(`${String(res.headers['x-call-id'])}\n`);
    return;
  }
  if (options.async) throw refusal(res);
  if (res.status >= 200 && res.status < 300) {
    await write(process.stdout, res.body);
    return;
  }
  await write(process.stderr, res.body);
  throw new FnbusError('function_error', res.status, `${name} answered ${res.status}`);
}

/** All of stdin; nothing when it is a terminal (no body to wait for). */
async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function write(stream: NodeJS.WritableStream, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(data, (error) => (error ? reject(error) : resolve()));
  });
}

async function remove(name: string, options: GatewayOptions & { namespace?: string }) {
  await client(options).system('DELETE', '/system/functions', {
    functionName: name,
    ...(options.namespace ? { namespace: options.namespace } : {}),
  });
  print(`removed ${name}\n`);
}

async function scale(
  name: string,
  options: GatewayOptions & { replicas: string; namespace?: string },
): Promise<void> {
  if (!/^\d+$/.test(options.replicas) || !Number.isSafeInteger(Number(options.replicas))) {
    throw new ValidationError(
      `--replicas must be a whole number, 0 or more, not "${options.replicas}"`,
    );
  }
  const replicas = Number(options.replicas);
  await client(options).system('POST', `/system/scale-function/${pathName(name)}`, {
    serviceName: name,
    replicas,
    ...(options.namespace ? { namespace: options.namespace } : {}),
  });
  print(`scaled ${name} to ${replicas} replica${replicas === 1 ? '' : 's'}\n`);
}

/** RFC 3339 date-time with a zone, as the gateway's `since` takes it. */
const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** `--since`: a duration ago (`10m`), or an RFC 3339 time as given. */
export function sinceTime(text: string, now = Date.now()): string {
  const ms = parseDurationMs(text);
  if (ms !== undefined) return new Date(now - ms).toISOString();
  if (rfc3339.test(text) && !Number.isNaN(new Date(text).getTime())) return text;
  throw new ValidationError(
    `--since takes a duration (e.g. 10m) or an RFC 3339 time (e.g. 2024-01-02T15:04:05Z), not "${text}"`,
  );
}

interface LogsOptions extends GatewayOptions {
  follow?: boolean;
  tail?: string;
  since?: string;
  output: string;
  instance?: string;
  namespace?: string;
}

/** faas-cli's plain format: `TIMESTAMP NAME (INSTANCE) TEXT`. */
function formatLogLine(line: string, output: string): string {
  if (output === 'json') return `${line}\n`;
  let message: Partial<LogMessage>;
  try {
    message = JSON.parse(line) as Partial<LogMessage>;
  } catch (error) {
    throw new GatewayError(502, 'the gateway sent a log line that is not JSON', { cause: error });
  }
  const text = (message.text ?? '').replace(/\r?\n$/, '');
  return `${message.timestamp ?? ''} ${message.name ?? ''} (${message.instance ?? ''}) ${text}\n`;
}

async function logs(name: string, options: LogsOptions): Promise<void> {
  if (options.output !== 'text' && options.output !== 'json') {
    throw new ValidationError(`--output takes text or json, not "${options.output}"`);
  }
  if (options.tail !== undefined && !/^\d+$/.test(options.tail)) {
    throw new ValidationError(`--tail must be a whole number, 0 or more, not "${options.tail}"`);
  }
  const since = options.since === undefined ? undefined : sinceTime(options.since);
  const gateway = client(options);
  // Ctrl-C ends a follow cleanly: the stream is closed and the command exits 0.
  const aborter = new AbortController();
  const interrupt = () => aborter.abort();
  process.once('SIGINT', interrupt);
  try {
    const res = await gateway.stream('GET', '/system/logs', {
      query: {
        name,
        namespace: options.namespace,
        instance: options.instance,
        tail: options.tail,
        since,
        follow: options.follow ? 'true' : 'false',
      },
      signal: aborter.signal,
    });
    let pending = '';
    for await (const chunk of res.body) {
      pending += (chunk as Buffer).toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      const text = lines
        .filter((line) => line.trim() !== '')
        .map((line) => formatLogLine(line, options.output))
        .join('');
      if (text) print(text);
    }
    if (pending.trim() !== '') print(formatLogLine(pending, options.output));
  } catch (error) {
    if (aborter.signal.aborted) return;
    if (error instanceof FnbusError) throw error;
    throw new GatewayError(
      503,
      `the log stream from ${gateway.target.url} broke: ${String(error)}`,
      {
        cause: error,
      },
    );
  } finally {
    process.removeListener('SIGINT', interrupt);
  }
}

interface SecretOptions extends GatewayOptions {
  fromLiteral?: string;
  fromFile?: string;
  trim: boolean;
  namespace?: string;
}

/** UTF-8 text without NULs goes as `value`; anything else as base64 `rawValue`. */
function isText(data: Buffer): boolean {
  return !data.includes(0) && Buffer.from(data.toString('utf8'), 'utf8').equals(data);
}

async function secretBody(name: string, options: SecretOptions): Promise<Secret> {
  if (options.fromLiteral !== undefined && options.fromFile !== undefined) {
    throw new ValidationError('give either --from-literal or --from-file, not both');
  }
  const secret: Secret = { name };
  if (options.namespace) secret.namespace = options.namespace;
  if (options.fromFile !== undefined) {
    let data: Buffer;
    try {
      data = readFileSync(options.fromFile);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new ValidationError(`cannot read --from-file ${options.fromFile}: ${code}`, {
        cause: error,
      });
    }
    if (isText(data)) secret.value = data.toString('utf8');
    else secret.rawValue = data.toString('base64');
    return secret;
  }
  let data: Buffer;
  if (options.fromLiteral !== undefined) data = Buffer.from(options.fromLiteral, 'utf8');
  else {
    if (process.stdin.isTTY) {
      throw new ValidationError('give the value with --from-literal, --from-file or on stdin');
    }
    data = await readStdin();
  }
  if (!isText(data)) {
    secret.rawValue = data.toString('base64');
    return secret;
  }
  const value = options.trim ? data.toString('utf8').trim() : data.toString('utf8');
  if (value === '') {
    throw new ValidationError(
      `the value of secret ${name} is empty: give --from-literal, --from-file or pipe it on stdin`,
    );
  }
  secret.value = value;
  return secret;
}

/** A refused secret call as one line the user can act on. */
function secretRefusal(error: unknown, name: string): unknown {
  if (!(error instanceof FnbusError)) return error;
  if (error.status === 409) {
    return new GatewayError(409, `secret ${name} exists (409): use fnbus secret update`, {
      cause: error,
    });
  }
  if (error.status === 404) {
    return new GatewayError(404, `secret ${name} is unknown (404)`, { cause: error });
  }
  return error;
}

async function writeSecret(
  verb: 'create' | 'update',
  name: string,
  options: SecretOptions,
): Promise<void> {
  const body = await secretBody(name, options);
  try {
    await client(options).system(verb === 'create' ? 'POST' : 'PUT', '/system/secrets', body);
  } catch (error) {
    throw secretRefusal(error, name);
  }
  print(`${verb === 'create' ? 'created' : 'updated'} secret ${name}\n`);
}

async function listSecrets(options: GatewayOptions & { namespace?: string }): Promise<void> {
  const secrets = await client(options).json<Secret[]>('/system/secrets', {
    namespace: options.namespace,
  });
  const names = secrets.map((s) => s.name).sort((a, b) => a.localeCompare(b));
  print(names.map((n) => `${n}\n`).join(''));
}

async function removeSecret(name: string, options: GatewayOptions & { namespace?: string }) {
  try {
    await client(options).system('DELETE', '/system/secrets', {
      name,
      ...(options.namespace ? { namespace: options.namespace } : {}),
    });
  } catch (error) {
    throw secretRefusal(error, name);
  }
  print(`removed secret ${name}\n`);
}

/**
 * The CLI's version on the first line (alone, for scripts); then the gateway's and provider's
 * from `/system/info` when a gateway answers within a few seconds, else a one-line note on
 * stderr. Never an error.
 */
async function showVersion(options: GatewayOptions): Promise<void> {
  print(`${cliVersion}\n`);
  let gateway: GatewayClient;
  let info: GatewayInfo;
  try {
    gateway = client(options);
    const res = await gateway.call('GET', '/system/info', { signal: AbortSignal.timeout(3000) });
    if (res.status < 200 || res.status >= 300) throw refusal(res);
    info = JSON.parse(res.body.toString('utf8')) as GatewayInfo;
  } catch (error) {
    if (!(error instanceof FnbusError) && !(error instanceof SyntaxError)) throw error;
    process.stderr.write(`fnbus: note: the CLI version only; ${error.message}\n`);
    return;
  }
  const provider = info.provider;
  print(
    `gateway: ${gateway.target.url} version ${info.version?.release ?? '-'}\n` +
      `provider: ${provider?.provider ?? '-'} version ${provider?.version?.release ?? '-'}` +
      `${provider?.orchestration ? ` (${provider.orchestration})` : ''}\n`,
  );
}
