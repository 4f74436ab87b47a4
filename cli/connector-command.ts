import { pino } from 'pino';
import { Registry } from 'prom-client';
import { resolveGateway } from '../client/gateway-client.js';
import { ValidationError } from '../core/errors.js';
import { connectorKind } from '../connectors/kinds.js';
import { runConnector } from '../connectors/sdk/run-connector.js';
import { parseConnectorKinds } from './connectors.js';
import { serveMetrics } from './metrics-server.js';

export interface ConnectorCommandOptions {
  gateway?: string;
  lease?: string;
}

/**
 * `fnbus connector <kind>`: one connector alone, against any OpenFaaS-compatible gateway, with
 * its Prometheus metrics on `metrics_port`, until SIGINT or SIGTERM.
 */
export async function connectorCommand(
  name: string,
  options: ConnectorCommandOptions,
): Promise<void> {
  const [only, ...more] = parseConnectorKinds(name);
  const kind = only === undefined ? undefined : connectorKind(only);
  if (!kind || more.length > 0) {
    throw new ValidationError('name one connector: fnbus connector <kind>');
  }
  const logger = pino({ name: 'fnbus-connector' });
  const registry = new Registry();
  const env = {
    ...process.env,
    ...(options.gateway ? { gateway_url: options.gateway } : {}),
    ...(options.lease ? { lease_url: options.lease } : {}),
  };
  // The kind's settings with the SDK's: every problem at once, before anything listens.
  const { metricsPort, basicAuth, gatewayUrl } = kind.readConfig(env).connector;
  // OpenFaaS's way first (basic_auth=true: the secret files); else the credentials every fnbus
  // command uses: FNBUS_USERNAME / FNBUS_PASSWORD, or the login saved for this gateway.
  const authorization = basicAuth
    ? undefined
    : resolveGateway({ gateway: gatewayUrl }, process.env).authorization;
  const metrics = await serveMetrics(registry, metricsPort);
  let running;
  try {
    running = await runConnector(kind, {
      env,
      logger,
      registry,
      ...(authorization ? { authorization } : {}),
    });
  } catch (error) {
    metrics.close();
    throw error;
  }
  const connector = running;
  const stop = () => {
    connector.stop().then(
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
  // A source that fails for good (a broker refused the credentials) ends the command, exit 1.
  connector.done.catch((error: unknown) => {
    logger.error({ err: error }, 'the connector failed');
    process.exitCode = 1;
    stop();
  });
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
