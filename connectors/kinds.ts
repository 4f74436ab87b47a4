import { cronKind } from './cron/cron-kind.js';
import { kafkaKind } from './kafka/kafka-kind.js';
import { mqttKind } from './mqtt/mqtt-kind.js';
import { natsKind } from './nats/nats-kind.js';
import type { ConnectorKind, KindConfig } from './sdk/run-connector.js';
import { webhookKind } from './webhook/webhook-kind.js';

/**
 * Every kind of connector fnbus runs (`fnbus up --connectors`, `fnbus connector <kind>`): a
 * kind is one folder with its source and one entry here.
 */
export const connectorKinds: readonly ConnectorKind<KindConfig>[] = [
  cronKind,
  webhookKind,
  kafkaKind,
  mqttKind,
  natsKind,
];

/** The kind named `name`, if there is one. */
export function connectorKind(name: string): ConnectorKind<KindConfig> | undefined {
  return connectorKinds.find((kind) => kind.name === name);
}
