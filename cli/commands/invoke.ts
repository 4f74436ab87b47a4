import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import { FunctionCallError, ValidationError } from '../../core/errors.js';
import { collect, gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';
import { readStdin } from '../read-stdin.js';

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

/**
 * `fnbus invoke NAME`: stdin is the body, the answer goes to stdout; a non-2xx answer goes to
 * stderr and exits 1. `--async` queues the call and prints its call id alone.
 */
export function registerInvokeCommand(program: Command): void {
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
  )
    .addHelpText(
      'after',
      helpExamples(
        'echo \'{"name":"ada"}\' | fnbus invoke hello --content-type application/json',
        'fnbus invoke hello --method GET --query lang=fr < /dev/null',
        'id=$(echo hi | fnbus invoke hello --async) && fnbus call "$id"',
      ),
    )
    .action(invoke);
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
  const { openGateway } = await import('../open-gateway.js');
  const { refusal } = await import('../../client/gateway-client.js');
  const body = await readStdin();
  const target = options.namespace ? `${name}.${options.namespace}` : name;
  const route = options.async ? 'async-function' : 'function';
  const res = await openGateway(options).call(method, `/${route}/${encodeURIComponent(target)}`, {
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
  throw new FunctionCallError(res.status, `${name} answered ${res.status}`);
}

function write(stream: NodeJS.WritableStream, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(data, (error) => (error ? reject(error) : resolve()));
  });
}
