import type { Command } from 'commander';
import type { HubOptions } from '../hub-config.js';
import { helpExamples } from '../help-examples.js';
import { defaultHost } from '../listen-host.js';

type GatewayCommandOptions = Pick<HubOptions, 'port' | 'host' | 'stateDir' | 'provider' | 'queue'>;

/** `fnbus gateway`: the gateway alone, over any provider, queueing on a shared queue. */
export function registerGatewayCommand(program: Command): void {
  program
    .command('gateway')
    .description(
      'run the gateway alone, over the provider its URL names (the process provider, or any OpenFaaS provider over HTTP); async calls go to a shared queue that `fnbus queue-worker` drains',
    )
    .option(
      '--provider <url>',
      'process (replicas on this machine), or http://host:port (faas-netes, faasd, another fnbus gateway) (default: $FNBUS_PROVIDER, else process)',
    )
    .option(
      '--queue <url>',
      'the async queue: redis://host:port (BullMQ) or nats://host:port (JetStream) (default: $FNBUS_QUEUE, else none: async routes answer 501)',
    )
    .option('-p, --port <port>', 'the gateway port (default: $port, else 8080)')
    .option(
      '--host <address>',
      `the address to listen on, e.g. 0.0.0.0 for every network (default: $FNBUS_HOST, else ${defaultHost}: this machine only)`,
    )
    .option(
      '--state-dir <dir>',
      "the process provider's functions, and a generated password (default: $FNBUS_STATE_DIR, else as fnbus up)",
    )
    .addHelpText(
      'after',
      helpExamples(
        'fnbus gateway --provider http://faas-netes.openfaas:8081 --queue redis://127.0.0.1:6379',
        'FNBUS_PROVIDER_SECRET_MOUNT_PATH=/run/secrets fnbus gateway --provider http://127.0.0.1:8081',
        'fnbus gateway --port 9090                  # over the process provider, as fnbus up',
      ),
    )
    .action(async (options: GatewayCommandOptions) => {
      const { runGatewayCommand } = await import('../standalone-gateway.js');
      await runGatewayCommand(options);
    });
}
