import type { Command } from 'commander';
import { helpExamples } from '../help-examples.js';

export interface QueueWorkerCommandOptions {
  queue?: string;
  gateway?: string;
}

/** `fnbus queue-worker`: async calls from a shared queue, through any gateway. */
export function registerQueueWorkerCommand(program: Command): void {
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
    .addHelpText(
      'after',
      helpExamples(
        'fnbus queue-worker --queue redis://127.0.0.1:6379 --gateway http://127.0.0.1:8080',
        'FNBUS_QUEUE=nats://127.0.0.1:4222 max_inflight=16 fnbus queue-worker',
      ),
    )
    .action(async (options: QueueWorkerCommandOptions) => {
      const { readHubConfig } = await import('../hub-config.js');
      const hub = readHubConfig(process.env, { ...options, parts: ['worker'] });
      const { pino } = await import('pino');
      const { runQueueWorker } = await import('../queue-worker.js');
      await runQueueWorker({
        queueUrl: hub.queueUrl,
        config: hub.worker,
        logger: pino({ name: 'fnbus-queue-worker' }),
      });
    });
}
