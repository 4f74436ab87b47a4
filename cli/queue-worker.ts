import { Registry } from 'prom-client';
import { ValidationError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { WorkerConfig } from '../queue/config.js';
import { openQueue, queueOptions } from '../queue/open-queue.js';
import { workerFromConfig } from '../queue/worker-from-config.js';
import { serveMetrics } from './metrics-server.js';
import { stopOnSignals } from './stop-signals.js';

export interface QueueWorkerOptions {
  queueUrl: string | undefined;
  config: WorkerConfig;
  logger: Logger;
}

/**
 * `fnbus queue-worker`: a worker on its own, against a shared queue and any gateway. Runs until
 * SIGTERM or SIGINT, then lets its calls in flight finish. Serves its metrics on metrics_port.
 */
export async function runQueueWorker({ queueUrl, config, logger }: QueueWorkerOptions) {
  if (!queueUrl || queueUrl === 'local') {
    throw new ValidationError(
      'queue-worker needs a shared queue: --queue redis://host:port or nats://host:port (the local queue belongs to one fnbus up)',
    );
  }
  const queue = await openQueue(queueUrl, '.', queueOptions(config));
  const registry = new Registry();
  const { worker, invoker } = workerFromConfig(queue, config, config.gatewayUrl, registry, logger);
  const metricsServer = await serveMetrics(registry, config.metricsPort);
  const stop = new AbortController();
  // Ends at the stop, its calls in flight finished; a failure of the worker is the command's.
  const finished = (async () => {
    try {
      await worker.run(stop.signal);
    } finally {
      metricsServer.close();
      await invoker.close();
      await queue.close();
    }
  })();
  stopOnSignals(async () => {
    stop.abort();
    await finished;
  }, logger);
  logger.info(
    { queue: queueUrl, gateway: config.gatewayUrl, maxInflight: config.maxInflight },
    'queue worker running',
  );
  await finished;
}
