import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../core/logger.js';
import { ProcessProvider } from '../deploy/process/process-provider.js';
import { Registry } from 'prom-client';
import { buildGateway } from '../gateway/app.js';
import type { GatewayConfig } from '../gateway/config.js';
import type { WorkerConfig } from '../queue/config.js';
import { GatewayInvoker } from '../queue/gateway-invoker.js';
import { openQueue } from '../queue/open-queue.js';
import { QueueWorker } from '../queue/worker.js';
import { WorkerMetrics } from '../queue/worker-metrics.js';
import { prepareStackFunction, stackDeployment } from './stack-deployments.js';
import { loadStack, type Stack } from './stack.js';

export interface UpOptions {
  stackFile: string | undefined;
  config: GatewayConfig;
  stateDir: string;
  logger: Logger;
  /** The async queue's URL (`redis://`, `nats://`); default: the embedded one in stateDir. */
  queueUrl?: string;
  worker: WorkerConfig;
}

export interface RunningHub {
  port: number;
  stop(): Promise<void>;
}

/** Where `fnbus up` keeps deployed functions between runs, unless told otherwise. */
export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'fnbus');
}

/**
 * `fnbus up`: the whole hub in one process (gateway + process provider), with the stack's
 * functions deployed (updated if they exist from an earlier run). Functions deployed through the
 * API in an earlier run come back too: the provider keeps them in its state folder.
 */
export async function up({
  stackFile,
  config,
  stateDir,
  logger,
  queueUrl,
  worker: workerConfig,
}: UpOptions): Promise<RunningHub> {
  const stack = stackFile ? loadStack(stackFile, process.env) : undefined;
  const queue = await openQueue(queueUrl, stateDir, { leaseMs: workerConfig.ackWaitMs });
  const provider = new ProcessProvider({ stateDir, namespace: config.functionNamespace, logger });
  await provider.start();
  const { FNBUS_USERNAME: user, FNBUS_PASSWORD: password } = process.env;
  const credentials = user && password ? { user, password } : undefined;
  // One registry: /metrics serves the gateway's and the worker's metrics together.
  const registry = new Registry();
  const gateway = buildGateway({ provider, config, credentials, queue, registry });
  const stopWorker = new AbortController();
  let invoker: GatewayInvoker | undefined;
  let working: Promise<void> | undefined;
  try {
    await gateway.listen({ port: config.port, host: '0.0.0.0' });
    const address = gateway.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    // The worker calls functions through this very gateway, as a separate worker would.
    invoker = new GatewayInvoker({
      gatewayUrl: `http://127.0.0.1:${port}`,
      timeoutMs: workerConfig.upstreamTimeoutMs,
    });
    const worker = new QueueWorker({
      queue,
      invoker,
      maxInflight: workerConfig.maxInflight,
      retry: workerConfig.retry,
      maxAgeMs: workerConfig.maxAgeMs,
      callback: workerConfig.callback,
      metrics: new WorkerMetrics(registry, queue),
      logger: logger.child({ component: 'queue-worker' }),
    });
    working = worker.run(stopWorker.signal);
    if (stack) await deployStack(stack, provider, config.functionNamespace, logger);
    return {
      port,
      async stop() {
        // The worker's calls in flight finish (through the gateway), then callers are turned
        // away, then the functions stop.
        stopWorker.abort();
        await working;
        await gateway.close();
        await invoker?.close();
        await queue.close();
        await provider.close();
      },
    };
  } catch (error) {
    stopWorker.abort();
    await working;
    await gateway.close();
    await invoker?.close();
    await queue.close();
    await provider.close();
    throw error;
  }
}

async function deployStack(
  stack: Stack,
  provider: ProcessProvider,
  namespace: string,
  logger: Logger,
): Promise<void> {
  const names = Object.keys(stack.functions);
  for (const [index, name] of names.entries()) {
    const deployment = stackDeployment(name, stack, namespace);
    await prepareStackFunction(name, stack, (line) => logger.info({ function: name }, line));
    if (await provider.get(name, deployment.namespace)) await provider.update(deployment);
    else await provider.deploy(deployment);
    logger.info({ function: name, progress: `${index + 1}/${names.length}` }, 'deployed');
  }
}
