import type { Command } from 'commander';
import { parseDurationMs } from '../../core/duration.js';
import { ValidationError } from '../../core/errors.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

interface LoginOptions {
  gateway?: string;
  username: string;
  password?: string;
  passwordStdin?: boolean;
  tlsNoVerify?: boolean;
  timeout: string;
}

/**
 * `fnbus login`, with faas-cli's flags and its config file (client/openfaas-config.ts): a login
 * made by either is used by both. The gateway is `--gateway`, else `FNBUS_GATEWAY`, else
 * `OPENFAAS_URL`, else http://127.0.0.1:8080, keyed as faas-cli keys it.
 */
export function registerLoginCommand(program: Command): void {
  program
    .command('login')
    .description(
      'check a user and password against a gateway, then keep them for every fnbus (and faas-cli) command',
    )
    .option(
      '-g, --gateway <url>',
      'the gateway (default: $FNBUS_GATEWAY, else $OPENFAAS_URL, else http://127.0.0.1:8080)',
    )
    .option('-u, --username <user>', 'the user', 'admin')
    .option(
      '-p, --password <password>',
      'the password (seen by other users of this machine: prefer --password-stdin)',
    )
    .option('-s, --password-stdin', 'read the password from stdin')
    .option('--tls-no-verify', 'https: take any certificate')
    .option('--timeout <duration>', 'how long to wait for the gateway', '5s')
    .addHelpText(
      'after',
      helpExamples(
        'cat ~/password.txt | fnbus login --username admin --password-stdin',
        'fnbus login -u admin -p PASSWORD --gateway http://127.0.0.1:8080',
      ),
    )
    .action(login);
}

async function login(options: LoginOptions): Promise<void> {
  const user = options.username.trim();
  if (user === '') throw new ValidationError('--username must not be empty');
  if (options.password !== undefined && options.passwordStdin) {
    throw new ValidationError('--password and --password-stdin are mutually exclusive');
  }
  const timeoutMs = parseDurationMs(options.timeout);
  if (timeoutMs === undefined || timeoutMs <= 0) {
    throw new ValidationError(`--timeout "${options.timeout}" is not a duration (e.g. 5s)`);
  }
  if (options.password !== undefined) {
    process.stderr.write(
      'fnbus: warning: --password is seen by other users of this machine; use --password-stdin\n',
    );
  }
  // Trimmed, as faas-cli does: `cat file |` and `echo |` add a newline.
  const password = (options.passwordStdin ? await readAll() : (options.password ?? '')).trim();
  if (password === '') {
    throw new ValidationError('give a non-empty password with --password-stdin or --password');
  }
  const { gatewayUrl } = await import('../../client/gateway-client.js');
  const { displayPath, normaliseGateway, saveCredentials } =
    await import('../../client/openfaas-config.js');
  const gateway = normaliseGateway(gatewayUrl(options, process.env));
  await checkLogin(gateway, user, password, options.tlsNoVerify === true, timeoutMs);
  const file = saveCredentials(gateway, { user, password }, process.env);
  print(`credentials saved for ${user} ${gateway} in ${displayPath(file, process.env)}\n`);
}

/** faas-cli's check: GET /system/functions with the credentials; 200 is a login, 401 is not. */
async function checkLogin(
  gateway: string,
  user: string,
  password: string,
  tlsNoVerify: boolean,
  timeoutMs: number,
): Promise<void> {
  const { basicAuthorization, GatewayClient, GatewayError, refusal } =
    await import('../../client/gateway-client.js');
  const client = new GatewayClient({
    url: gateway,
    authorization: basicAuthorization(user, password),
    tlsNoVerify,
  });
  const res = await client.call('GET', '/system/functions', {
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status === 401) {
    throw new GatewayError(401, `cannot log in to ${gateway}: wrong user or password (401)`);
  }
  if (res.status < 200 || res.status >= 300) throw refusal(res);
}

/** All of stdin, waiting for it even on a terminal (a typed password). */
async function readAll(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
