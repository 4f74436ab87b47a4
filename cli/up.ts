import { resolve } from 'node:path';
import type { Logger } from '../core/logger.js';
import type { Provider } from '../core/provider.js';
import { openProvider, providerKind } from '../deploy/open-provider.js';
import { readProviderLimits, type ProviderLimits } from '../deploy/process/limits.js';
import { buildGateway } from '../gateway/app.js';
import { basicAuthorization } from '../client/gateway-client.js';
import { announceGeneratedPassword, hubCredentials } from './hub-credentials.js';
import { defaultHost, isLoopback, localHost } from './listen-host.js';
import type { GatewayConfig } from '../gateway/config.js';
import type { WorkerConfig } from '../queue/config.js';
import type { Env } from '../core/config.js';
import { webhookPrefix } from '../connectors/webhook/webhook-handler.js';
import { AggregatorRegistry, Registry } from 'prom-client';
import { openQueue, queueOptions } from '../queue/open-queue.js';
import { startConnectors, type RunningConnectors } from './connectors.js';
import { makeStateFolder } from './state-folder.js';
import { wakingQueue } from './waking-queue.js';
import { refusingQueue } from './refusing-queue.js';
import {
  WorkerSupervisor,
  startConnectorThread,
  startWorkerThread,
  timedOut,
  within,
} from './worker-supervisor.js';
import type { ConnectorThreadMetrics } from './connector-thread.js';
import { connectorKind } from '../connectors/kinds.js';
import { ReplicaLeases } from './replica-leases.js';
import { ReplicaInvoker } from './replica-invoker.js';
import { localChannel } from './local-channel.js';
import type { SyncInvokerFactory } from '../connectors/sdk/connector-parts.js';
import type { TagMode } from './image-tag.js';
import { buildStackFunction, stackDeployment } from './stack-deployments.js';
import { normalizeDeployment } from '../core/function-deployment.js';
import { LocalImageStore, localImagesDir } from '../deploy/process/local-image-store.js';
import { loadStack, type Stack } from './stack.js';
import { build, version } from '../watchdog/version.js';

export interface UpOptions {
  stackFile: string | undefined;
  config: GatewayConfig;
  /** The address to listen on; default 127.0.0.1 (this machine only). */
  host?: string;
  stateDir: string;
  logger: Logger;
  /** The async queue's URL (`redis://`, `nats://`); default: the embedded one in stateDir. */
  queueUrl?: string;
  /** The provider's URL (`process`, `http://…`, see openProvider); default: the process provider. */
  providerUrl?: string;
  /** On a container provider: build the stack's images first (default true), and push them (default true). */
  buildImages?: boolean;
  push?: boolean;
  /** The stack's images with faas-cli's `--tag` (built and deployed so); default latest. */
  tag?: TagMode;
  worker: WorkerConfig;
  /** The connectors to run against this hub's gateway, and their env config. */
  connectors: readonly string[];
  connectorEnv: Env;
  /** The process provider's caps, as readHubConfig read them; default: from process.env. */
  limits?: ProviderLimits;
  /** This machine's image store (`fnbus build`), as readHubConfig read it; default: from process.env. */
  imagesDir?: string;
}

export interface RunningHub {
  port: number;
  stop(): Promise<void>;
}

/** How long closing takes at most once shutdown_timeout has passed (stopping processes). */
const closeGraceMs = 5000;

/**
 * `fnbus up`: the whole hub in one process (gateway + process provider), with the stack's
 * functions deployed (updated if they exist from an earlier run). Functions deployed through the
 * API in an earlier run come back too: the provider keeps them in its state folder.
 */
export async function up({
  stackFile,
  config,
  host = defaultHost,
  stateDir,
  logger,
  queueUrl,
  providerUrl,
  buildImages = true,
  push = true,
  tag = 'latest',
  worker: workerConfig,
  connectors: connectorKinds,
  connectorEnv,
  limits = readProviderLimits(process.env),
  imagesDir = localImagesDir(process.env),
}: UpOptions): Promise<RunningHub> {
  const kind = providerKind(providerUrl);
  makeStateFolder(stateDir);
  const stack = stackFile ? loadStack(stackFile, process.env) : undefined;
  // A container provider runs the stack's images: built and pushed first, as faas-cli up does.
  if (stack && kind !== 'process' && buildImages) {
    const { buildAndPushStack } = await import('./image-builds.js');
    await buildAndPushStack(stack, { push, tag }, (line) => logger.info(line));
  }
  const auth = hubCredentials(config, process.env, stateDir);
  const credentials = auth.credentials;
  if (auth.generated && auth.passwordFile) {
    announceGeneratedPassword(logger, host, config.port, auth.passwordFile);
  }
  const queue = await openQueue(queueUrl, stateDir, queueOptions(workerConfig));
  const images = new LocalImageStore(imagesDir);
  const opened = await openProvider(providerUrl, {
    stateDir,
    namespace: config.functionNamespace,
    env: process.env,
    images,
    logger,
    limits,
  }).catch(async (error: unknown) => {
    await queue.close();
    throw error;
  });
  const { provider, process: local } = opened;
  /** Set once the gateway listens (until then, nothing can be queued). */
  let gatewayUrl: string | undefined;
  // The worker thread, restarted with backoff whenever it ends on its own.
  const worker = new WorkerSupervisor(
    () =>
      startWorkerThread(
        { queueUrl, stateDir, gatewayUrl: gatewayUrl ?? '', config: workerConfig },
        logger,
        leases,
      ),
    { logger },
  );
  let connectors: RunningConnectors | undefined;
  // The broker connectors (Kafka, MQTT, NATS) run on a thread of their own, the others here.
  const threadKinds = connectorKinds.filter((name) => connectorKind(name)?.ownThread);
  const hereKinds = connectorKinds.filter((name) => !threadKinds.includes(name));
  let connectorThread: WorkerSupervisor<ConnectorThreadMetrics> | undefined;
  let stopping = false;
  // The embedded queue has no writer but this hub: its worker thread (a second V8, ~15 MB) starts
  // with the first call queued, or at once when calls wait from an earlier run. A shared queue's
  // worker starts at once: other gateways queue calls too.
  const embedded = !queueUrl || queueUrl === 'local';
  const wake = () => {
    if (gatewayUrl) void worker.start();
  };
  // The gateway's metrics, the worker thread's (by message) and the connectors', served together.
  // The connectors of this thread and of theirs share families (fnbus_connector_deliveries_total):
  // summed into one.
  const registry = new Registry();
  const connectorRegistry = new Registry();
  const connectorMetrics = async () => {
    const theirs = await connectorThread?.metrics();
    const ours = await connectorRegistry.getMetricsAsJSON();
    return AggregatorRegistry.aggregate(theirs ? [ours, theirs] : [ours]).metrics();
  };
  const gateway = buildGateway({
    provider,
    // Calls reach the replicas in this process directly, not through their loopback ports.
    ...(local ? { resolveLocal: (name, namespace) => local.resolveLocal(name, namespace) } : {}),
    config,
    logger,
    version: { release: version, sha: build.sha, commit_message: build.commitMessage },
    credentials,
    queue: refusingQueue(embedded ? wakingQueue(queue, wake) : queue, () =>
      stopping ? 'the hub is stopping' : undefined,
    ),
    registry,
    moreMetrics: async () => ((await worker.metrics()) ?? '') + (await connectorMetrics()),
    health: () => worker.health() ?? connectorThread?.health(),
    mounts: connectorKinds.includes('webhook')
      ? [
          {
            prefix: webhookPrefix,
            methods: ['POST'],
            summary: 'A webhook: invokes every function whose topic annotation names <topic>',
            statuses: {
              202: 'the calls, queued or answered',
              400: 'a bad path',
              401: 'a signature refused',
              404: 'no function takes the topic',
              413: 'body over the limit',
              502: 'a delivery failed (dead-lettered): send again',
              503: 'starting',
              default: "one sync function's own answer",
            },
            // Connectors start once the gateway listens: until then, come back later.
            handler: (req, res) => {
              if (connectors?.webhook) connectors.webhook(req, res);
              else {
                res.writeHead(503, { 'Content-Type': 'text/plain', 'Retry-After': '1' });
                res.end('starting\n');
              }
            },
          },
        ]
      : [],
  });
  // The worker calls the replicas of this hub without going through the gateway's route (one HTTP
  // exchange, not two), their limits and the gateway's metrics applied on this thread.
  const leases =
    local &&
    new ReplicaLeases({
      provider: local,
      metrics: gateway.functionMetrics,
      registry,
      functionNamespace: config.functionNamespace,
      upstreamTimeoutMs: config.upstreamTimeoutMs,
    });
  // Callers are turned away first (no new connection; a request on an open one is answered 503;
  // nothing more is queued), while the calls in flight finish, the worker's included (its
  // connections stay open): for shutdownTimeoutMs at most, then they are cut and the worker
  // thread terminated (its calls run again at the next start). Then the functions stop.
  const stop = async () => {
    stopping = true;
    const deadline = Date.now() + config.shutdownTimeoutMs;
    const left = () => Math.max(0, deadline - Date.now());
    // No new connection from now on; resolves once every connection has ended.
    const drained = new Promise<void>((resolve) => gateway.server.close(() => resolve()));
    // A connection is closed as soon as its call is over, not kept alive for another.
    const idle = setInterval(() => gateway.server.closeIdleConnections(), 50);
    const closing = gateway.close();
    await Promise.all([
      within(connectors?.stop() ?? Promise.resolve(), left()),
      connectorThread?.stop(left()),
      worker.stop(left()),
    ]);
    if ((await within(drained, left())) === timedOut) {
      logger.warn({ timeoutMs: config.shutdownTimeoutMs }, 'calls still in flight: cut');
      gateway.server.closeAllConnections();
    }
    clearInterval(idle);
    await within(closing, closeGraceMs);
    // The queue's connection and the functions' processes, bounded too (a broker that is down
    // must not hold the exit), with a few seconds for the processes to be stopped.
    const closed = Promise.all([queue.close(), opened.close()]);
    if ((await within(closed, Math.max(left(), closeGraceMs))) === timedOut) {
      logger.warn('the queue or the functions did not close in time');
    }
  };
  try {
    await gateway.listen({ port: config.port, host });
    const address = gateway.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    // The worker and the connectors reach this gateway as any client on this machine would.
    const selfUrl = `http://${localHost(host)}:${port}`;
    if (!credentials) {
      const open = isLoopback(host) ? 'this machine' : 'the network';
      logger.warn(
        { host, port },
        `basic_auth is off: anyone on ${open} who reaches this port can deploy functions, and so run commands as this user`,
      );
    }
    // The worker runs from a thread of its own: the second core, not this thread, carries the
    // queue's work. What it cannot send to a replica directly goes through this very gateway.
    gatewayUrl = selfUrl;
    const waiting = Object.values(embedded ? await queue.stats() : {}).some(
      (stats) => stats.queued + stats.running > 0,
    );
    if (!embedded || waiting) await worker.start();
    if (stack) {
      await deployStack(
        stack,
        provider,
        local ? images : undefined,
        config.functionNamespace,
        tag,
        logger,
      );
    }
    // Connectors reach this gateway as they would any other, over HTTP; their synchronous calls
    // to this hub's replicas go to them directly, as the worker's do. A hub on a shared queue
    // (one of several) shares cron slots through the same server.
    const shared = queueUrl && /^(rediss?|nats):\/\//.test(queueUrl) ? queueUrl : undefined;
    const connectorRun = {
      env: { ...connectorEnv, gateway_url: selfUrl, FNBUS_LEASE_URL: shared ?? 'local' },
      host: { embedded: true, stateDir, secretsDir: resolve(stateDir, 'secrets') },
      authorization: credentials && basicAuthorization(credentials.user, credentials.password),
    };
    connectors = await startConnectors(hereKinds, {
      ...connectorRun,
      logger,
      registry: connectorRegistry,
      ...(leases ? { syncInvoker: directCalls(leases, new URL(selfUrl).host) } : {}),
    });
    if (threadKinds.length > 0) {
      // Their settings checked here, so that a mistake ends `fnbus up` saying what it is.
      for (const name of threadKinds) connectorKind(name)?.readConfig(connectorRun.env);
      const data = { ...connectorRun, names: threadKinds, gatewayHost: new URL(selfUrl).host };
      connectorThread = new WorkerSupervisor(
        () => startConnectorThread(data, logger, leases || undefined),
        { logger, name: 'connectors' },
      );
      await connectorThread.startOrFail();
    }
    return { port, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * A connector's synchronous calls to this hub's replicas, made from this thread without the
 * gateway's HTTP route (the leases apply the replicas' limits and the gateway's metrics); the
 * route for functions with no ready replica here.
 */
function directCalls(leases: ReplicaLeases, gatewayHost: string): SyncInvokerFactory {
  return (gateway) => {
    const [ours, theirs] = localChannel();
    const release = leases.serve(theirs);
    const invoker = new ReplicaInvoker({ port: ours, gateway, gatewayHost });
    return {
      invoke: (fn, request, limits) => invoker.invoke(fn, request, limits),
      async close() {
        await invoker.close();
        release();
      },
    };
  };
}

/**
 * Deploys (or updates) every function of the stack. `images`: the local image store, for the
 * process provider, where a template function is built for this machine first; a container
 * provider runs the images built and pushed before.
 */
async function deployStack(
  stack: Stack,
  provider: Provider,
  images: LocalImageStore | undefined,
  namespace: string,
  tag: TagMode,
  logger: Logger,
): Promise<void> {
  const names = Object.keys(stack.functions);
  for (const [index, name] of names.entries()) {
    // Checked as the gateway checks a deployment: the provider gets what it would get from one.
    const deployment = normalizeDeployment(stackDeployment(name, stack, namespace, tag), namespace);
    if (images) {
      await buildStackFunction(
        name,
        stack,
        images,
        (line) => logger.info({ function: name }, line),
        tag,
      );
    }
    if (await provider.get(name, deployment.namespace)) await provider.update(deployment);
    else await provider.deploy(deployment);
    logger.info({ function: name, progress: `${index + 1}/${names.length}` }, 'deployed');
  }
}
