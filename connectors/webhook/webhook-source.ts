import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { once } from 'node:events';
import { silentLogger, type Logger } from '../../core/logger.js';
import type { Source, SourceEvent } from '../../core/source.js';
import type { InvokerResponse } from '../sdk/controller.js';
import type { TopicMap } from '../sdk/topic-map.js';
import type { WebhookConfig } from './config.js';
import { createWebhookHandler } from './webhook-handler.js';

export interface WebhookSourceOptions {
  topicMap: () => TopicMap | undefined;
  config: WebhookConfig;
  /** Where the signing keys are, one file each (secret_mount_path, or the hub's secret store). */
  secretsDir: string;
  logger?: Logger;
}

/**
 * Webhooks as a Source: `POST /webhook/<topic>` (webhook-handler.ts) emits one event to the
 * topic's functions and answers with their calls. `handle` serves them wherever it is mounted
 * (the hub's port in `fnbus up`), or `listen()` serves them on a port of their own; until the
 * source is started (the first topic map built), they are answered 503 with Retry-After, so that
 * senders come back rather than give up.
 */
export class WebhookSource implements Source<InvokerResponse[]> {
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void;
  #emit: ((event: SourceEvent) => Promise<InvokerResponse[]>) | undefined;
  #server: Server | undefined;
  readonly #logger: Logger;

  constructor(options: WebhookSourceOptions) {
    this.#logger = options.logger ?? silentLogger;
    this.handle = createWebhookHandler({
      topicMap: options.topicMap,
      emit: () => this.#emit,
      config: options.config,
      secret: fileSecret(options.secretsDir),
      logger: this.#logger,
    });
  }

  /** The port it listens on, when it has one of its own. */
  get port(): number | undefined {
    return (this.#server?.address() as AddressInfo | null)?.port;
  }

  /** Serves webhooks on `port` (0: any free one) from now on; the port it listens on. */
  async listen(port: number): Promise<number> {
    const server = createServer(this.handle);
    server.listen(port);
    await once(server, 'listening');
    this.#server = server;
    const listening = (server.address() as AddressInfo).port;
    this.#logger.info({ port: listening }, 'webhooks listening');
    return listening;
  }

  /** Takes webhooks until `signal` aborts; then stops listening once those in flight are answered. */
  async start(
    emit: (event: SourceEvent) => Promise<InvokerResponse[]>,
    signal: AbortSignal,
  ): Promise<void> {
    if (!signal.aborted) {
      this.#emit = emit;
      await once(signal, 'abort');
    }
    const server = this.#server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await closed;
  }
}

/** A secret's value from its file in `dir` (trimmed); undefined when there is none. */
function fileSecret(dir: string) {
  return (name: string): Promise<string | undefined> =>
    /^[-._a-zA-Z0-9]+$/.test(name)
      ? readFile(join(dir, name), 'utf8').then(
          (value) => value.trim(),
          () => undefined,
        )
      : Promise.resolve(undefined);
}
