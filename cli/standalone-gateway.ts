import { pino } from 'pino';
import type { Env } from '../core/config.js';
import { ValidationError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Queue } from '../core/queue.js';
import { openProvider, providerKind, type OpenedProvider } from '../deploy/open-provider.js';
import { buildGateway } from '../gateway/app.js';
import type { ProviderLimits } from '../deploy/process/limits.js';
import { LocalImageStore } from '../deploy/process/local-image-store.js';
import type { GatewayConfig } from '../gateway/config.js';
import type { WorkerConfig } from '../queue/config.js';
import { openQueue, queueOptions } from '../queue/open-queue.js';
import { build, version } from '../watchdog/version.js';
import { announceGeneratedPassword, hubCredentials } from './hub-credentials.js';
import { defaultHost, isLoopback } from './listen-host.js';
import { refusingQueue } from './refusing-queue.js';
import { timedOut, within } from './worker-supervisor.js';
import { makeStateFolder } from './state-folder.js';
import { stopOnSignals } from './stop-signals.js';

export interface GatewayOptions {
  config: GatewayConfig;
  /** The address to listen on; default 127.0.0.1 (this machine only). */
  host?: string;
  /** The provider's URL (`process`, `http://…`); default: the process provider. */
  providerUrl?: string | undefined;
  /** A shared queue for the async routes (`redis://`, `nats://`); without one they answer 501. */
  queueUrl?: string | undefined;
  /** The state folder: the process provider's, and a generated password's. */
  stateDir: string;
  worker: WorkerConfig;
  /** The process provider's caps, as readHubConfig read them. */
  limits?: ProviderLimits;
  /** Where the process provider finds what `fnbus build` made (readHubConfig's imagesDir). */
  imagesDir?: string;
  env: Env;
  logger: Logger;
}

export interface RunningGateway {
  port: number;
  stop(): Promise<void>;
}

/** The embedded queue belongs to one `fnbus up`: no worker of another process drains it. */
function refuseLocalQueue(queueUrl: string | undefined): void {
  if (queueUrl === 'local') {
    throw new ValidationError(
      'fnbus gateway needs a shared queue: --queue redis://host:port or nats://host:port (the local queue belongs to one fnbus up)',
    );
  }
}

/** How long closing takes at most once shutdown_timeout has passed. */
const closeGraceMs = 5000;

/**
 * `fnbus gateway`: the gateway alone, over the provider its URL names, its async routes queueing
 * on a shared queue that `fnbus queue-worker`s drain elsewhere. Auth, host and port as `fnbus up`.
 */
export async function startGateway({
  config,
  host = defaultHost,
  providerUrl,
  queueUrl,
  stateDir,
  worker,
  limits,
  imagesDir,
  env,
  logger,
}: GatewayOptions): Promise<RunningGateway> {
  refuseLocalQueue(queueUrl);
  providerKind(providerUrl);
  makeStateFolder(stateDir);
  const auth = hubCredentials(config, env, stateDir);
  if (auth.generated && auth.passwordFile) {
    announceGeneratedPassword(logger, host, config.port, auth.passwordFile);
  }
  let stopping = false;
  let opened: OpenedProvider | undefined;
  let queue: Queue | undefined;
  const closeAll = async () => {
    const closed = Promise.all([queue?.close(), opened?.close()]);
    if ((await within(closed, closeGraceMs)) === timedOut) {
      logger.warn('the queue or the provider did not close in time');
    }
  };
  try {
    opened = await openProvider(providerUrl, {
      stateDir,
      namespace: config.functionNamespace,
      env,
      logger,
      ...(limits ? { limits } : {}),
      ...(imagesDir ? { images: new LocalImageStore(imagesDir) } : {}),
    });
    queue = queueUrl ? await openQueue(queueUrl, stateDir, queueOptions(worker)) : undefined;
  } catch (error) {
    await closeAll();
    throw error;
  }
  const { process: local } = opened;
  const gateway = buildGateway({
    provider: opened.provider,
    ...(local ? { resolveLocal: (name, namespace) => local.resolveLocal(name, namespace) } : {}),
    config,
    logger,
    version: { release: version, sha: build.sha, commit_message: build.commitMessage },
    ...(auth.credentials ? { credentials: auth.credentials } : {}),
    ...(queue
      ? {
          queue: refusingQueue(queue, () => (stopping ? 'the gateway is stopping' : undefined)),
        }
      : {}),
  });
  const stop = async () => {
    stopping = true;
    const closing = gateway.close();
    const idle = setInterval(() => gateway.server.closeIdleConnections(), 50);
    if ((await within(closing, config.shutdownTimeoutMs)) === timedOut) {
      logger.warn({ timeoutMs: config.shutdownTimeoutMs }, 'calls still in flight: cut');
      gateway.server.closeAllConnections();
    }
    clearInterval(idle);
    await closeAll();
  };
  try {
    await gateway.listen({ port: config.port, host });
  } catch (error) {
    await stop();
    throw error;
  }
  const address = gateway.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  if (!auth.credentials) {
    const open = isLoopback(host) ? 'this machine' : 'the network';
    logger.warn(
      { host, port },
      `basic_auth is off: anyone on ${open} who reaches this port can deploy functions`,
    );
  }
  return { port, stop };
}

/** The command's action: reads the settings, starts, and stops on SIGINT / SIGTERM. */
export async function runGatewayCommand(options: {
  port?: string;
  host?: string;
  stateDir?: string;
  provider?: string;
  queue?: string;
}): Promise<void> {
  const { readHubConfig } = await import('./hub-config.js');
  const env = process.env;
  if ((options.queue ?? env.FNBUS_QUEUE)?.trim() === 'local') refuseLocalQueue('local');
  // Every setting, checked before anything starts: one run names every problem.
  const hub = readHubConfig(env, { ...options, parts: ['gateway', 'provider', 'worker'] });
  const logger = pino({ name: 'fnbus-gateway' });
  const { host, providerUrl, queueUrl } = hub;
  const running = await startGateway({
    config: hub.gateway,
    host,
    providerUrl,
    queueUrl,
    stateDir: hub.stateDir,
    worker: hub.worker,
    limits: hub.provider,
    imagesDir: hub.imagesDir,
    env: hub.env,
    logger,
  });
  logger.info(
    {
      host,
      port: running.port,
      provider: safeUrl(providerUrl ?? 'process'),
      queue: queueUrl && safeUrl(queueUrl),
    },
    'fnbus gateway is up',
  );
  stopOnSignals(() => running.stop(), logger);
}

/** A URL as it may be logged: without user info. */
function safeUrl(url: string): string {
  if (!URL.canParse(url)) return url.includes('@') ? '(unreadable URL)' : url;
  const parsed = new URL(url);
  if (!parsed.username && !parsed.password) return url;
  parsed.username = '';
  parsed.password = '';
  return parsed.href;
}
