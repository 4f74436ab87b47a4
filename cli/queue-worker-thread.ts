/**
 * The queue worker of `fnbus up`, on a thread of its own (see up.ts): it takes calls from the
 * hub's queue and runs them, on the machine's second core: straight to the hub's replicas, leased
 * from the main thread (cli/replica-leases.ts), else through the hub's gateway as a separate
 * `fnbus queue-worker` would. Talks to the main thread as cli/hub-thread.ts says; its metrics are
 * its Prometheus text.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { WorkerConfig } from '../queue/config.js';
import { openQueue, queueOptions } from '../queue/open-queue.js';
import { workerFromConfig } from '../queue/worker-from-config.js';
import { answerHub, stopped } from './hub-thread.js';
import { ReplicaInvoker } from './replica-invoker.js';

export interface WorkerThreadData {
  queueUrl: string | undefined;
  stateDir: string;
  gatewayUrl: string;
  config: WorkerConfig;
  /** To the hub's replica leases (cli/replica-leases.ts): calls go to replicas directly. */
  leases?: MessagePort;
}

const port = parentPort;
if (!port) throw new Error('queue-worker-thread runs as a worker thread of fnbus up');
const { queueUrl, stateDir, gatewayUrl, config, leases } = workerData as WorkerThreadData;
const logger = pino({ name: 'fnbus' }).child({ component: 'queue-worker' });
// The hub's local queue is another connection to its SQLite file: no wake-up crosses threads,
// so it is polled.
const queue = await openQueue(queueUrl, stateDir, { ...queueOptions(config), pollMs: 5 });
const registry = new Registry();
const { worker, invoker } = workerFromConfig(
  queue,
  config,
  gatewayUrl,
  registry,
  logger,
  leases &&
    ((gateway) =>
      new ReplicaInvoker({
        port: leases,
        gateway,
        gatewayHost: new URL(gatewayUrl).host,
      })),
);
const stop = answerHub(port, () => registry.metrics());
await worker.run(stop);
await invoker.close();
await queue.close();
stopped(port);
