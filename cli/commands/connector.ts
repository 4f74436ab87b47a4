import type { Command } from 'commander';
import { ValidationError } from '../../core/errors.js';
import { helpExamples } from '../help-examples.js';
import { stopOnSignals } from '../stop-signals.js';

export interface ConnectorCommandOptions {
  gateway?: string;
  lease?: string;
}

/** `fnbus connector <kind>`: one connector alone, against any OpenFaaS-compatible gateway. */
export function registerConnectorCommand(program: Command): void {
  program
    .command('connector <kind>')
    .description(
      "run one connector (cron, webhook, kafka, mqtt, nats) against any OpenFaaS-compatible gateway, configured by env as OpenFaaS's connectors are",
    )
    .option('--gateway <url>', 'the gateway (default: $gateway_url, else http://127.0.0.1:8080)')
    .option(
      '--lease <url>',
      'cron: where replicas share slots, redis://host:port or nats://host:port (default: $FNBUS_LEASE_URL, else this process alone)',
    )
    .addHelpText(
      'after',
      helpExamples(
        'fnbus connector cron --gateway http://127.0.0.1:8080',
        'webhook_port=8090 fnbus connector webhook --gateway http://hub:8080',
        'broker_hosts=kafka:9092 group=faas-group-1 fnbus connector kafka --gateway http://hub:8080',
        'broker=tcp://mosquitto:1883 client_id=fnbus-1 fnbus connector mqtt --gateway http://hub:8080',
      ),
    )
    .action(connectorAction);
}

/**
 * Runs the connector through the one connector runtime (connectors/sdk/run-connector.ts), with
 * its Prometheus metrics on `FNBUS_METRICS_PORT`, until SIGINT or SIGTERM (a bounded stop); a
 * source that fails for good ends the command with exit 1.
 */
async function connectorAction(name: string, options: ConnectorCommandOptions): Promise<void> {
  const { connectorKind } = await import('../../connectors/kinds.js');
  const kind = connectorKind(name);
  if (!kind) {
    const { connectorKinds } = await import('../connectors.js');
    throw new ValidationError(
      `fnbus connector takes one of ${connectorKinds.join(', ')}, not "${name}"`,
    );
  }
  const { readHubConfig } = await import('../hub-config.js');
  const hub = readHubConfig(process.env, {
    ...options,
    connectors: name,
    parts: ['connector', 'webhook'],
  });
  const { pino } = await import('pino');
  const { Registry } = await import('prom-client');
  const { resolveGateway } = await import('../../client/gateway-client.js');
  const { runConnector } = await import('../../connectors/sdk/run-connector.js');
  const { serveMetrics } = await import('../metrics-server.js');
  const logger = pino({ name: 'fnbus-connector' });
  const registry = new Registry();
  const { metricsPort, basicAuth, gatewayUrl } = hub.connector;
  // OpenFaaS's way first (basic_auth=true: the secret files); else the credentials every fnbus
  // command uses: FNBUS_USERNAME / FNBUS_PASSWORD, or the login saved for this gateway.
  const authorization = basicAuth
    ? undefined
    : resolveGateway({ gateway: gatewayUrl }, process.env).authorization;
  const metrics = await serveMetrics(registry, metricsPort);
  const env = { ...hub.env, ...(hub.leaseUrl ? { FNBUS_LEASE_URL: hub.leaseUrl } : {}) };
  let connector: Awaited<ReturnType<typeof runConnector>>;
  try {
    connector = await runConnector(kind, {
      env,
      logger,
      registry,
      ...(authorization ? { authorization } : {}),
    });
  } catch (error) {
    metrics.close();
    throw error;
  }
  const shutdown = stopOnSignals(async () => {
    try {
      await connector.stop();
    } finally {
      metrics.close();
    }
  }, logger);
  connector.done.catch((error: unknown) => {
    logger.error({ err: error }, 'the connector failed');
    process.exitCode = 1;
    shutdown('failure');
  });
}
