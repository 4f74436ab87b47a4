import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { ValidationError } from '../../core/errors.js';
import { helpExamples } from '../help-examples.js';

export interface ConnectorCommandOptions {
  gateway?: string;
  lease?: string;
}

/** `fnbus connector <kind>`: one connector alone, against any OpenFaaS-compatible gateway. */
export function registerConnectorCommand(program: Command): void {
  program
    .command('connector <kind>')
    .description(
      "run one connector (cron, webhook) against any OpenFaaS-compatible gateway, configured by env as OpenFaaS's connectors are",
    )
    .option('--gateway <url>', 'the gateway (default: $gateway_url, else http://127.0.0.1:8080)')
    .option(
      '--lease <url>',
      'cron: where replicas share slots, redis://host:port or nats://host:port (default: $lease_url, else this process alone)',
    )
    .addHelpText(
      'after',
      helpExamples(
        'fnbus connector cron --gateway http://127.0.0.1:8080',
        'webhook_port=8090 fnbus connector webhook --gateway http://hub:8080',
      ),
    )
    .action(runConnector);
}

async function runConnector(kind: string, options: ConnectorCommandOptions): Promise<void> {
  const { connectorKinds } = await import('../connectors.js');
  if (!(connectorKinds as readonly string[]).includes(kind)) {
    throw new ValidationError(
      `fnbus connector takes one of ${connectorKinds.join(', ')}, not "${kind}"`,
    );
  }
  const { readHubConfig } = await import('../hub-config.js');
  const hub = readHubConfig(process.env, {
    ...options,
    connectors: kind,
    parts: ['connector', 'webhook'],
  });
  const { createServer } = await import('node:http');
  const { pino } = await import('pino');
  const { Registry } = await import('prom-client');
  const { resolveGateway } = await import('../../client/gateway-client.js');
  const { startConnectors } = await import('../connectors.js');
  const { serveMetrics } = await import('../metrics-server.js');
  const { listen } = await import('../listen.js');
  const kinds = hub.connectors;
  const logger = pino({ name: 'fnbus-connector' });
  const registry = new Registry();
  const { metricsPort, basicAuth, gatewayUrl } = hub.connector;
  // OpenFaaS's way first (basic_auth=true: the secret files); else the credentials every fnbus
  // command uses: FNBUS_USERNAME / FNBUS_PASSWORD, or the login saved for this gateway.
  const authorization = basicAuth
    ? undefined
    : resolveGateway({ gateway: gatewayUrl }, process.env).authorization;
  const metrics = await serveMetrics(registry, metricsPort);
  const running = await startConnectors(kinds, {
    env: hub.env,
    gatewayUrl: options.gateway,
    logger,
    registry,
    leaseUrl: hub.leaseUrl,
    ...(authorization ? { authorization } : {}),
  });
  // The webhook connector alone serves POST /webhook/<topic> on a port of its own.
  const webhook = running.webhook;
  const server = webhook && createServer(webhook.handle);
  if (webhook && server) {
    await listen(server, webhook.port);
    logger.info({ port: (server.address() as AddressInfo).port }, 'webhooks listening');
  }
  const stop = () => {
    server?.close();
    running.stop().then(
      () => {
        metrics.close();
        logger.info('stopped');
      },
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
