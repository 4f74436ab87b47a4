import { EnvReader } from '../../core/config.js';
import { readConnectorSettings } from '../sdk/config.js';
import type { ConnectorKind, KindConfig } from '../sdk/run-connector.js';
import { readWebhookSettings, type WebhookConfig } from './config.js';
import { WebhookConnectorName } from './webhook-handler.js';
import type { WebhookSource } from './webhook-source.js';

export interface WebhookKindConfig extends KindConfig {
  webhook: WebhookConfig;
}

/**
 * `webhook`: `POST /webhook/<topic>` to the topic's functions (webhook-source.ts). Queued (202)
 * unless asked otherwise, as the sender seldom waits for the work; on the hub's port in
 * `fnbus up`, else on `webhook_port`.
 */
export const webhookKind = {
  name: 'webhook',
  connector: WebhookConnectorName,
  runsByDefault: true,
  readConfig(env) {
    const read = new EnvReader(env);
    const connector = readConnectorSettings(read, {
      asyncInvocation: true,
      contentType: 'application/json',
    });
    return read.done({ connector, webhook: readWebhookSettings(read) });
  },
  async createSource({ config, topicMap, logger, host }): Promise<WebhookSource> {
    const { WebhookSource } = await import('./webhook-source.js');
    const source = new WebhookSource({
      topicMap,
      config: config.webhook,
      secretsDir: host.secretsDir ?? config.connector.secretMountPath,
      logger,
    });
    // Alone, it listens at once: a sender gets a 503 to retry rather than a refused connection.
    if (!host.embedded) await source.listen(config.webhook.port);
    return source;
  },
} satisfies ConnectorKind<WebhookKindConfig, WebhookSource>;
