import type { Command } from 'commander';
import type { HubOptions } from '../hub-config.js';
import { helpExamples } from '../help-examples.js';
import { tagMode, tagModes } from '../image-tag.js';
import { stopOnSignals } from '../stop-signals.js';

export type UpCommandOptions = Pick<
  HubOptions,
  'port' | 'host' | 'stateDir' | 'queue' | 'provider' | 'connectors'
> & { yaml?: string; build: boolean; push: boolean; tag: string };

/**
 * `fnbus up`: the whole hub on this machine (gateway, process provider, queue worker,
 * connectors). The action loads the hub only when it runs, so other commands start fast.
 */
export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('run the hub (gateway + process provider) on this machine, deploying a stack')
    .option('-f, --yaml <file>', 'the stack file to deploy')
    .option('-p, --port <port>', 'the gateway port (default: $port, else 8080)')
    .option(
      '--host <address>',
      'the address to listen on, e.g. 0.0.0.0 for every network (default: $FNBUS_HOST, else 127.0.0.1: this machine only)',
    )
    .option(
      '--state-dir <dir>',
      'where deployed functions are kept between runs (default: $FNBUS_STATE_DIR, else $XDG_STATE_HOME/fnbus, else ~/.local/state/fnbus)',
    )
    .option(
      '--queue <url>',
      'the async queue: redis://host:port (BullMQ), nats://host:port (JetStream), or local (default: $FNBUS_QUEUE, else embedded, in the state folder)',
    )
    .option(
      '--provider <url>',
      'process (replicas on this machine), kubernetes:// (a cluster: the kubeconfig, or in-cluster credentials), or http://host:port (an OpenFaaS provider) (default: $FNBUS_PROVIDER, else process)',
    )
    .option(
      '--no-build',
      "on kubernetes://: deploy the stack's images as they are, without building them",
    )
    .option(
      '--no-push',
      'on kubernetes://: build the images but do not push them (a cluster that sees this Docker engine)',
    )
    .option(
      '--tag <mode>',
      `the stack's image tag: ${tagModes.join(', ')} (from git, as fnbus build --tag)`,
      'latest',
    )
    .option(
      '--connectors <list>',
      'the connectors to run, comma-separated, or none (cron, webhook, kafka, mqtt, nats; default: $FNBUS_CONNECTORS, else cron,webhook)',
    )
    .addHelpText(
      'after',
      helpExamples(
        'fnbus up -f stack.yml',
        'fnbus up -f stack.yml --port 9090 --queue redis://127.0.0.1:6379 --connectors cron',
        "fnbus up -f stack.yml --provider kubernetes://   # build, push and deploy to the kubeconfig's cluster",
        'basic_auth=false fnbus up --host 127.0.0.1   # no login: this machine only',
      ),
    )
    .action(runUp);
}

async function runUp(options: UpCommandOptions): Promise<void> {
  const { readHubConfig } = await import('../hub-config.js');
  // Every setting, checked before anything starts: one run names every problem.
  const hub = readHubConfig(process.env, options);
  const tag = tagMode(options.tag);
  const { pino } = await import('pino');
  const { up } = await import('../up.js');
  const logger = pino({ name: 'fnbus' });
  const { host, stateDir } = hub;
  const running = await up({
    stackFile: options.yaml,
    config: hub.gateway,
    host,
    stateDir,
    logger,
    queueUrl: hub.queueUrl,
    ...(hub.providerUrl ? { providerUrl: hub.providerUrl } : {}),
    buildImages: options.build,
    push: options.push,
    tag,
    worker: hub.worker,
    connectors: hub.connectors,
    connectorEnv: hub.env,
    limits: hub.provider,
    imagesDir: hub.imagesDir,
  });
  logger.info({ host, port: running.port, stateDir }, 'fnbus is up');
  stopOnSignals(() => running.stop(), logger);
}
