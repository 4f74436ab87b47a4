import type { Registry } from 'prom-client';
import type { Logger } from '../core/logger.js';
import type { Invoker } from '../core/invoker.js';
import type { Queue } from '../core/queue.js';
import type { WorkerConfig } from './config.js';
import { GatewayInvoker } from '../client/gateway-invoker.js';
import { QueueWorker } from './worker.js';
import { WorkerMetrics } from './worker-metrics.js';

/**
 * A queue worker as its env configures it, calling functions through the gateway at
 * `gatewayUrl` and counting into `registry`: what `fnbus queue-worker` and the worker thread of
 * `fnbus up` both run. Close the invoker once the worker has stopped. `direct`, given the gateway's
 * invoker, makes the one the worker calls through (`fnbus up`: its replicas, reached directly).
 */
export function workerFromConfig(
  queue: Queue,
  config: WorkerConfig,
  gatewayUrl: string,
  registry: Registry,
  logger: Logger,
  direct?: (gateway: GatewayInvoker) => ClosableInvoker,
): { worker: QueueWorker; invoker: ClosableInvoker } {
  // No deadline of the invoker's own: the worker gives each call one (call_timeout, or the
  // function's). A connection for every call in flight: none waits for another to come back.
  const gateway = new GatewayInvoker({
    gatewayUrl,
    timeoutMs: 0,
    connections: Math.max(128, config.maxInflight),
  });
  const invoker = direct ? direct(gateway) : gateway;
  const worker = new QueueWorker({
    queue,
    invoker,
    maxInflight: config.maxInflight,
    retry: config.retry,
    maxAgeMs: config.maxAgeMs,
    callback: config.callback,
    callTimeoutMs: config.callTimeoutMs,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    metrics: new WorkerMetrics(registry, queue),
    logger,
  });
  return { worker, invoker };
}

export interface ClosableInvoker extends Invoker {
  close(): Promise<void>;
}
