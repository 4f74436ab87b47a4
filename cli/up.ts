import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from '../core/logger.js';
import { readProviderLimits } from '../deploy/process/limits.js';
import { ProcessProvider } from '../deploy/process/process-provider.js';
import { Worker } from 'node:worker_threads';
import { buildGateway } from '../gateway/app.js';
import { loadCredentials } from '../gateway/auth.js';
import { basicAuthorization } from '../client/gateway-client.js';
import type { GatewayConfig } from '../gateway/config.js';
import type { WorkerConfig } from '../queue/config.js';
import type { Env } from '../core/config.js';
import { webhookPrefix } from '../connectors/webhook/webhook-handler.js';
import { Registry } from 'prom-client';
import { openQueue, queueOptions } from '../queue/open-queue.js';
import { startConnectors, type ConnectorKind, type RunningConnectors } from './connectors.js';
import { wakingQueue } from './waking-queue.js';
import type { FromWorkerThread, ToWorkerThread, WorkerThreadData } from './queue-worker-thread.js';
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
  /** The connectors to run against this hub's gateway, and their env config. */
  connectors: readonly ConnectorKind[];
  connectorEnv: Env;
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
  connectors: connectorKinds,
  connectorEnv,
}: UpOptions): Promise<RunningHub> {
  const stack = stackFile ? loadStack(stackFile, process.env) : undefined;
  const limits = readProviderLimits(process.env);
  const queue = await openQueue(queueUrl, stateDir, queueOptions(workerConfig));
  const provider = new ProcessProvider({
    stateDir,
    namespace: config.functionNamespace,
    logger,
    ...limits,
  });
  await provider.start();
  const { FNBUS_USERNAME: user, FNBUS_PASSWORD: password } = process.env;
  const credentials = user && password ? { user, password } : undefined;
  let worker: WorkerThread | undefined;
  let workerStarting: Promise<unknown> | undefined;
  /** Starts the worker thread, once the gateway listens (until then, nothing can be queued). */
  let startWorker = (): Promise<unknown> => Promise.resolve();
  let connectors: RunningConnectors | undefined;
  // The embedded queue has no writer but this hub: its worker thread (a second V8, ~15 MB) starts
  // with the first call queued, or at once when calls wait from an earlier run. A shared queue's
  // worker starts at once: other gateways queue calls too.
  const embedded = !queueUrl || queueUrl === 'local';
  const wake = () => {
    workerStarting ??= startWorker().catch((error: unknown) => {
      workerStarting = undefined;
      logger.error({ err: error }, 'the queue worker thread did not start');
    });
  };
  // The gateway's metrics and the connectors', served together; the worker thread's come by message.
  const registry = new Registry();
  const gateway = buildGateway({
    provider,
    config,
    credentials,
    queue: embedded ? wakingQueue(queue, wake) : queue,
    registry,
    moreMetrics: async () => (await worker?.metrics()) ?? '',
    mounts: connectorKinds.includes('webhook')
      ? [
          {
            prefix: webhookPrefix,
            methods: ['POST'],
            summary: 'A webhook: invokes every function whose topic annotation names <topic>',
            // Connectors start once the gateway listens: until then, come back later.
            handler: (req, res) => {
              if (connectors?.webhook) connectors.webhook.handle(req, res);
              else res.writeHead(503, { 'Content-Type': 'text/plain' }).end('starting\n');
            },
          },
        ]
      : [],
  });
  // Connectors stop sending, the worker's calls in flight finish (through the gateway), then
  // callers are turned away, then the functions stop.
  const stop = async () => {
    await connectors?.stop();
    await workerStarting;
    await worker?.stop();
    await gateway.close();
    await queue.close();
    await provider.close();
  };
  try {
    await gateway.listen({ port: config.port, host: '0.0.0.0' });
    const address = gateway.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    // The worker calls functions through this very gateway, as a separate worker would, from a
    // thread of its own: the second core, not this thread, carries the queue's work.
    startWorker = async () => {
      worker = await startWorkerThread(
        { queueUrl, stateDir, gatewayUrl: `http://127.0.0.1:${port}`, config: workerConfig },
        logger,
      );
    };
    const waiting = Object.values(embedded ? await queue.stats() : {}).some(
      (stats) => stats.queued + stats.running > 0,
    );
    if (!embedded || waiting) {
      workerStarting = startWorker();
      await workerStarting;
    }
    if (stack) await deployStack(stack, provider, config.functionNamespace, logger);
    // Connectors call this gateway as they would any other, over HTTP. A hub on a shared queue
    // (one of several) shares cron slots through the same server.
    const shared = queueUrl && /^(rediss?|nats):\/\//.test(queueUrl) ? queueUrl : undefined;
    // The hub's own credentials, as its gateway checks them (files first, then the env's).
    const system = config.basicAuth
      ? loadCredentials(config.secretMountPath, credentials)
      : credentials;
    connectors = await startConnectors(connectorKinds, {
      env: connectorEnv,
      gatewayUrl: `http://127.0.0.1:${port}`,
      logger,
      registry,
      leaseUrl: shared,
      stateDir,
      secretsDir: resolve(stateDir, 'secrets'),
      authorization: system && basicAuthorization(system.user, system.password),
    });
    return { port, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

interface WorkerThread {
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts cli/queue-worker-thread.ts; resolves once its queue is open. */
async function startWorkerThread(data: WorkerThreadData, logger: Logger): Promise<WorkerThread> {
  const thread = new Worker(new URL('./queue-worker-thread.js', import.meta.url), {
    workerData: data,
  });
  const answers = new Map<number, (text: string) => void>();
  let nextId = 1;
  let stopped!: () => void;
  const done = new Promise<void>((resolve) => (stopped = resolve));
  thread.on('message', (message: FromWorkerThread) => {
    if (message.type === 'metrics') answers.get(message.id)?.(message.text);
    if (message.type === 'stopped') stopped();
  });
  thread.on('error', (error) => logger.error({ err: error }, 'the queue worker thread failed'));
  thread.once('exit', () => {
    stopped();
    for (const answer of answers.values()) answer('');
  });
  await new Promise<void>((resolve, reject) => {
    thread.once('message', () => resolve());
    thread.once('error', reject);
  });
  return {
    metrics() {
      const id = nextId++;
      return new Promise((resolve) => {
        answers.set(id, (text) => {
          answers.delete(id);
          resolve(text);
        });
        thread.postMessage({ type: 'metrics', id } satisfies ToWorkerThread);
      });
    },
    async stop() {
      thread.postMessage({ type: 'stop' } satisfies ToWorkerThread);
      await done;
      await thread.terminate();
    },
  };
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
