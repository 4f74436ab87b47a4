import type { Command } from 'commander';
import { FnbusError, ValidationError } from '../core/errors.js';
import type { FunctionDeployment, FunctionStatus, StringMap } from '../core/function-types.js';
import { GatewayClient, resolveGateway, type GatewayOptions } from './gateway-client.js';
import { stackDeployment } from './stack-deployments.js';
import { loadStack } from './stack.js';

/**
 * The client commands (`deploy`, `list`, `describe`, `invoke`, `remove`, `scale`): each talks to a
 * gateway over HTTP, as faas-cli does (reference/openfaas.md §5.2). Every failure is a FnbusError,
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
}

function gatewayOptions(command: Command): Command {
  return command
    .option(
      '-g, --gateway <url>',
      'the gateway (default: $FNBUS_GATEWAY, else $OPENFAAS_URL, else http://127.0.0.1:8080)',
    )
    .option('--username <user>', 'basic-auth user (default: $FNBUS_USERNAME)')
    .option('--password <password>', 'basic-auth password (default: $FNBUS_PASSWORD)');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function client(options: GatewayOptions, fallback?: string): GatewayClient {
  return new GatewayClient(resolveGateway(options, process.env, fallback));
}

function print(text: string): void {
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
  let names = Object.keys(stack.functions);
  if (options.filter !== undefined) {
    const pattern = wildcard(options.filter);
    names = names.filter((name) => pattern.test(name));
    if (names.length === 0) {
      throw new ValidationError(
        `no function in ${stack.file ?? 'the stack'} matches "${options.filter}"`,
      );
    }
  }
  // Every deployment is built (and checked) before the first call.
  const deployments = names.map((name) => stackDeployment(name, stack));
  const gateway = client(options, stack.provider.gateway);
  for (const [index, deployment] of deployments.entries()) {
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

function wildcard(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
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

function table(rows: string[][]): string {
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
  const fn = await client(options).json<FunctionStatus>(`/system/function/${pathName(name)}`, {
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
  const lang = fn.annotations?.['fnbus.lang'];
  if (lang !== undefined || fn.envProcess) {
    const what = lang !== undefined ? `the ${lang} template handler` : 'its Function Process';
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
  const body = await readStdin();
  const target = options.namespace ? `${name}.${options.namespace}` : name;
  const res = await client(options).call(method, `/function/${pathName(target)}`, {
    headers,
    query,
    ...(body.length > 0 || !['GET', 'HEAD'].includes(method) ? { body } : {}),
  });
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
