#!/usr/bin/env node
import { relative } from 'node:path';
import { Command } from 'commander';
import { FnbusError, ValidationError } from '../core/errors.js';
import { pino } from 'pino';
import { readConfig as readGatewayConfig } from '../gateway/config.js';
import { readWorkerConfig } from '../queue/config.js';
import { runQueueWorker } from './queue-worker.js';
import { registerAsyncCommands } from './async-commands.js';
import { registerClientCommands } from './client-commands.js';
import { registerLoginCommands } from './login-commands.js';
import { connectorKinds, parseConnectorKinds, startConnectors } from './connectors.js';
import { serveMetrics } from './metrics-server.js';
import { registerTopicsCommand } from './topics-command.js';
import { registerGatewayCommand } from './commands/gateway.js';
import { readConnectorConfig } from '../connectors/sdk/config.js';
import { resolveGateway } from '../client/gateway-client.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { newFunction, templateLanguages } from './new-function.js';
import { bareHost, defaultHost } from './listen-host.js';
import { defaultStateDir, up } from './up.js';
import { version } from '../watchdog/version.js';

/**
 * The `fnbus` command. Every fnbus service is one of its subcommands; they arrive with the
 * issues that build them (`up`, `deploy`, `invoke`, ...). The watchdog has its own binary,
 * `fnbus-watchdog`, since it runs inside every function.
 */
const program = new Command()
  .name('fnbus')
  .description('fnbus: an event-connector hub for serverless functions, compatible with OpenFaaS')
  .version(version, '-v, --version', 'print the version')
  // Options after a subcommand are the subcommand's: `fnbus list -v` is verbose, not --version.
  .enablePositionalOptions()
  .showHelpAfterError();

program
  .command('new <name>')
  .description(
    'create a function from a template: its handler folder and its entry in the stack file',
  )
  .requiredOption('--lang <language>', `the template (${templateLanguages().join(', ')})`)
  .option('-f, --yaml <file>', 'the stack file to create or add to', 'stack.yml')
  .action((name: string, options: { lang: string; yaml: string }) => {
    const result = newFunction({
      name,
      lang: options.lang,
      stackFile: options.yaml,
      imagePrefix: process.env.OPENFAAS_PREFIX,
    });
    const where = relative(process.cwd(), result.handlerDir);
    process.stdout.write(
      `created ./${where} and ${result.stackCreated ? 'wrote' : 'added it to'} ${options.yaml}\n` +
        (result.welcomeMessage ? `\n${result.welcomeMessage.trimEnd()}\n` : ''),
    );
  });

interface UpCommandOptions {
  yaml?: string;
  port?: string;
  host?: string;
  stateDir: string;
  queue?: string;
  provider?: string;
  connectors?: string;
}

program
  .command('up')
  .description('run the hub (gateway + process provider) on this machine, deploying a stack')
  .option('-f, --yaml <file>', 'the stack file to deploy')
  .option('-p, --port <port>', 'the gateway port (default: $port, else 8080)')
  .option(
    '--host <address>',
    `the address to listen on, e.g. 0.0.0.0 for every network (default: $FNBUS_HOST, else ${defaultHost}: this machine only)`,
  )
  .option(
    '--state-dir <dir>',
    'where deployed functions are kept between runs',
    defaultStateDir(process.env),
  )
  .option(
    '--queue <url>',
    'the async queue: redis://host:port (BullMQ), nats://host:port (JetStream), or local (default: embedded, in the state folder)',
  )
  .option(
    '--provider <url>',
    'process (replicas on this machine), or http://host:port (an OpenFaaS provider) (default: $FNBUS_PROVIDER, else process)',
  )
  .option(
    '--connectors <list>',
    `the connectors to run, comma-separated, or none (${connectorKinds.join(', ')}; default: $FNBUS_CONNECTORS, else all)`,
  )
  .action(async (options: UpCommandOptions) => {
    const config = readGatewayConfig({
      ...process.env,
      ...(options.port ? { port: options.port } : {}),
    });
    const worker = readWorkerConfig(process.env);
    const connectors = parseConnectorKinds(
      options.connectors ?? process.env.FNBUS_CONNECTORS ?? connectorKinds.join(','),
    );
    const logger = pino({ name: 'fnbus' });
    const host = bareHost(options.host || process.env.FNBUS_HOST || defaultHost);
    const hub = await up({
      stackFile: options.yaml,
      config,
      host,
      stateDir: options.stateDir,
      logger,
      queueUrl: options.queue ?? process.env.FNBUS_QUEUE,
      providerUrl: options.provider ?? process.env.FNBUS_PROVIDER,
      worker,
      connectors,
      connectorEnv: process.env,
    });
    logger.info({ host, port: hub.port, stateDir: options.stateDir }, 'fnbus is up');
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'stopping');
      hub.stop().then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'error while stopping');
          process.exit(1);
        },
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

program
  .command('queue-worker')
  .description(
    'run async calls from a shared queue (redis:// or nats://) through a gateway; several may share the work',
  )
  .option(
    '--queue <url>',
    'the queue: redis://host:port or nats://host:port (default: $FNBUS_QUEUE)',
  )
  .option('--gateway <url>', 'the gateway to call functions through (default: $gateway_url)')
  .action(async (options: { queue?: string; gateway?: string }) => {
    const config = readWorkerConfig({
      ...process.env,
      ...(options.gateway ? { gateway_url: options.gateway } : {}),
    });
    await runQueueWorker({
      queueUrl: options.queue ?? process.env.FNBUS_QUEUE,
      config,
      logger: pino({ name: 'fnbus-queue-worker' }),
    });
  });

program
  .command('connector <kind>')
  .description(
    `run one connector (${connectorKinds.join(', ')}) against any OpenFaaS-compatible gateway, configured by env as OpenFaaS's connectors are`,
  )
  .option('--gateway <url>', 'the gateway (default: $gateway_url, else http://127.0.0.1:8080)')
  .option(
    '--lease <url>',
    'cron: where replicas share slots, redis://host:port or nats://host:port (default: $lease_url, else this process alone)',
  )
  .action(async (kind: string, options: { gateway?: string; lease?: string }) => {
    const kinds = parseConnectorKinds(kind);
    if (kinds.length !== 1) throw new ValidationError('name one connector: fnbus connector <kind>');
    const logger = pino({ name: 'fnbus-connector' });
    const registry = new Registry();
    const { metricsPort, basicAuth, gatewayUrl } = readConnectorConfig({
      ...process.env,
      ...(options.gateway ? { gateway_url: options.gateway } : {}),
    });
    // OpenFaaS's way first (basic_auth=true: the secret files); else the credentials every fnbus
    // command uses: FNBUS_USERNAME / FNBUS_PASSWORD, or the login saved for this gateway.
    const authorization = basicAuth
      ? undefined
      : resolveGateway({ gateway: gatewayUrl }, process.env).authorization;
    const metrics = await serveMetrics(registry, metricsPort);
    const running = await startConnectors(kinds, {
      env: process.env,
      gatewayUrl: options.gateway,
      logger,
      registry,
      leaseUrl: options.lease ?? process.env.lease_url,
      ...(authorization ? { authorization } : {}),
    });
    // The webhook connector alone serves POST /webhook/<topic> on a port of its own.
    const webhook = running.webhook;
    const server = webhook && createServer(webhook.handle);
    if (webhook && server) {
      await new Promise<void>((resolve) => server.listen(webhook.port, resolve));
      logger.info({ port: (server.address() as AddressInfo).port }, 'webhooks listening');
    }
    const stop = () => {
      server?.close();
      running.stop().then(
        () => {
          metrics.close();
          logger.info('stopped');
        },
        (error: unknown) => {
          logger.error({ err: error }, 'error while stopping');
          process.exitCode = 1;
        },
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

// `version`, and the client commands (`deploy`, `logs`, `secret`, ...), which talk to a gateway.
registerClientCommands(program);
registerAsyncCommands(program);
registerTopicsCommand(program);
registerLoginCommands(program);
registerGatewayCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // Bad input is one clear line and a non-zero exit, never a stack trace.
  if (!(error instanceof FnbusError)) throw error;
  process.stderr.write(`fnbus: ${error.message}\n`);
  process.exitCode = 1;
}
