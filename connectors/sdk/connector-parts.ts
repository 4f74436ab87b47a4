import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { basicAuthorization, GatewayClient } from '../../client/gateway-client.js';
import { GatewayInvoker } from '../../client/gateway-invoker.js';
import type { Invoker } from '../../core/invoker.js';
import { ConfigError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { ConnectorConfig } from './config.js';
import { Controller, type ResponseSubscriber } from './controller.js';
import { GatewayDeadLetters } from './gateway-dead-letters.js';
import { TopicMapBuilder } from './map-builder.js';
import { ReplyPublisher, ResponseMetrics, ResponsePrinter } from './response-subscribers.js';
import type { TopicMatcher } from './topic-matchers.js';

export interface ConnectorParts {
  gateway: GatewayClient;
  /**
   * The signal for one call to the gateway's system API: it aborts past its deadline
   * (`systemCallTimeoutMs`), or when the parts close, whichever comes first.
   */
  callSignal: () => AbortSignal;
  builder: TopicMapBuilder;
  controller: Controller;
  /** Ends every system call still waiting, and closes the invokers' connections. */
  close(): Promise<void>;
}

/** The longest a call to the gateway's system API (list, dead letter, call state) may take. */
export const systemCallTimeoutMs = 10_000;

export interface ConnectorPartsOptions {
  /** Sent as `X-Connector`. */
  connector: string;
  /** How event topics meet `topic` annotations; default exact. */
  matcher?: TopicMatcher;
  logger: Logger;
  registry?: Registry;
  /** `Authorization` for the gateway's system API (else read from basic_auth files, if on). */
  authorization?: string;
  /** The deadline of each system call; default systemCallTimeoutMs. */
  systemCallTimeoutMs?: number;
  /**
   * How synchronous calls reach functions, given the gateway's route (which it falls back on);
   * default that route, over HTTP.
   */
  syncInvoker?: SyncInvokerFactory;
}

/** Makes a connector's synchronous invoker from the gateway's (`fnbus up`: its replicas directly). */
export type SyncInvokerFactory = (
  gateway: Invoker & { close(): Promise<void> },
) => Invoker & { close(): Promise<void> };

/**
 * What every connector is made of, from its config: the gateway's client (system API, with the
 * `authorization` given, else basic auth as OpenFaaS's connectors read it: `basic-auth-user` and
 * `basic-auth-password` under `secret_mount_path` when `basic_auth` is set), the topic map builder and the controller with
 * its invokers and response subscribers.
 */
export async function connectorParts(
  config: ConnectorConfig,
  options: ConnectorPartsOptions,
): Promise<ConnectorParts> {
  const { connector, logger, registry } = options;
  const authorization =
    options.authorization ??
    (config.basicAuth ? await readBasicAuth(config.secretMountPath) : undefined);
  const gateway = new GatewayClient({
    url: config.gatewayUrl.replace(/\/+$/, ''),
    authorization,
  });
  const closing = new AbortController();
  const timeoutMs = options.systemCallTimeoutMs ?? systemCallTimeoutMs;
  const callSignal = () => AbortSignal.any([AbortSignal.timeout(timeoutMs), closing.signal]);
  const builder = new TopicMapBuilder({
    gateway,
    rebuildIntervalMs: config.rebuildIntervalMs,
    delimiter: config.topicDelimiter,
    ...(options.matcher ? { matcher: options.matcher } : {}),
    callSignal,
    logger,
  });
  const invoker = (async: boolean) =>
    new GatewayInvoker({
      gatewayUrl: config.gatewayUrl,
      timeoutMs: config.upstreamTimeoutMs,
      connections: config.maxInflight,
      async,
    });
  const sync = options.syncInvoker ? options.syncInvoker(invoker(false)) : invoker(false);
  const async = invoker(true);
  const subscribers: ResponseSubscriber[] = [new ReplyPublisher(logger)];
  if (config.printResponse) subscribers.push(new ResponsePrinter(logger, config.printResponseBody));
  if (registry) subscribers.push(new ResponseMetrics(registry));
  const controller = new Controller({
    connector,
    topicMap: () => builder.builtMap,
    sync,
    async,
    asyncInvocation: config.asyncInvocation,
    contentType: config.contentType,
    maxInflight: config.maxInflight,
    retry: config.retry,
    subscribers,
    deadLetters: new GatewayDeadLetters(gateway, callSignal),
    logger,
  });
  return {
    gateway,
    callSignal,
    builder,
    controller,
    async close() {
      closing.abort();
      await Promise.all([sync.close(), async.close()]);
    },
  };
}

async function readBasicAuth(dir: string): Promise<string> {
  try {
    const [user, password] = await Promise.all(
      ['basic-auth-user', 'basic-auth-password'].map(async (file) =>
        (await readFile(join(dir, file), 'utf8')).trim(),
      ),
    );
    return basicAuthorization(user ?? '', password ?? '');
  } catch (error) {
    throw new ConfigError([
      `basic_auth is on but the credentials cannot be read from ${dir}/basic-auth-user and basic-auth-password: ${(error as Error).message}`,
    ]);
  }
}
