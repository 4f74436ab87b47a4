import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import { FnbusError, ValidationError } from '../../core/errors.js';
import type { Secret } from '../../core/function-types.js';
import { gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';
import { readStdin } from '../read-stdin.js';

interface SecretOptions extends GatewayOptions {
  fromLiteral?: string;
  fromFile?: string;
  trim: boolean;
  namespace?: string;
}

/** `fnbus secret create|update|list|remove`. */
export function registerSecretCommand(program: Command): void {
  const secret = program
    .command('secret')
    .description('manage secrets: create, update, list, remove')
    .addHelpText(
      'after',
      helpExamples(
        'fnbus secret create api-key --from-literal s3cr3t',
        'fnbus secret update tls-cert --from-file cert.pem',
        'fnbus secret list',
      ),
    );
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
    )
      .addHelpText(
        'after',
        helpExamples(
          `fnbus secret ${verb} api-key --from-literal s3cr3t`,
          `fnbus secret ${verb} api-key < key.txt`,
        ),
      )
      .action((name: string, options: SecretOptions) => writeSecret(verb, name, options));
  }
  gatewayOptions(
    secret
      .command('list')
      .alias('ls')
      .description('list the secrets’ names (never their values)')
      .option('-n, --namespace <namespace>', 'the namespace'),
  )
    .addHelpText('after', helpExamples('fnbus secret list'))
    .action(listSecrets);
  gatewayOptions(
    secret
      .command('remove <name>')
      .alias('rm')
      .description('remove a secret')
      .option('-n, --namespace <namespace>', 'the namespace'),
  )
    .addHelpText('after', helpExamples('fnbus secret remove api-key'))
    .action(removeSecret);
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
async function secretRefusal(error: unknown, name: string): Promise<unknown> {
  if (!(error instanceof FnbusError)) return error;
  const { GatewayError } = await import('../../client/gateway-client.js');
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
  const { openGateway } = await import('../open-gateway.js');
  try {
    await openGateway(options).system(verb === 'create' ? 'POST' : 'PUT', '/system/secrets', body);
  } catch (error) {
    throw await secretRefusal(error, name);
  }
  print(`${verb === 'create' ? 'created' : 'updated'} secret ${name}\n`);
}

async function listSecrets(options: GatewayOptions & { namespace?: string }): Promise<void> {
  const { openGateway } = await import('../open-gateway.js');
  const secrets = await openGateway(options).json<Secret[]>('/system/secrets', {
    namespace: options.namespace,
  });
  const names = secrets.map((s) => s.name).sort((a, b) => a.localeCompare(b));
  print(names.map((n) => `${n}\n`).join(''));
}

async function removeSecret(name: string, options: GatewayOptions & { namespace?: string }) {
  const { openGateway } = await import('../open-gateway.js');
  try {
    await openGateway(options).system('DELETE', '/system/secrets', {
      name,
      ...(options.namespace ? { namespace: options.namespace } : {}),
    });
  } catch (error) {
    throw await secretRefusal(error, name);
  }
  print(`removed secret ${name}\n`);
}
