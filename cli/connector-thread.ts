/**
 * The broker connectors of `fnbus up` (Kafka, MQTT, NATS), on a thread of their own (see up.ts):
 * their events come by the thousand a second, and decoding them, running the deliveries and
 * calling the functions takes the machine's second core, not the gateway's thread. Their
 * synchronous calls go straight to the hub's replicas, leased from the main thread
 * (cli/replica-leases.ts), one channel a connector. Talks to the main thread as
 * cli/hub-thread.ts says; its metrics are its registry's JSON, which the hub adds to its own
 * connectors' (the families they share, such as fnbus_connector_deliveries_total, summed).
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { pino } from 'pino';
import { Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Env } from '../core/config.js';
import type { ConnectorHost } from '../connectors/sdk/run-connector.js';
import { startConnectors } from './connectors.js';
import { answerHub, stopped } from './hub-thread.js';
import { ReplicaInvoker } from './replica-invoker.js';

export interface ConnectorThreadData {
  /** The kinds to run here. */
  names: string[];
  env: Env;
  host: ConnectorHost;
  authorization?: string;
  /** The hub's gateway, for X-Forwarded-Host as it would set it. */
  gatewayHost: string;
  /** One channel to the hub's replica leases a connector, in the order of `names`. */
  leases?: MessagePort[];
}

/** A registry's metrics as getMetricsAsJSON() gives them: what crosses to the main thread. */
export type ConnectorThreadMetrics = MetricObjectWithValues<MetricValue<string>>[];

const port = parentPort;
if (!port) throw new Error('connector-thread runs as a worker thread of fnbus up');
const { names, env, host, authorization, gatewayHost, leases } = workerData as ConnectorThreadData;
const logger = pino({ name: 'fnbus' });
const registry = new Registry();
const channels = [...(leases ?? [])];
const connectors = await startConnectors(names, {
  env,
  logger,
  registry,
  host,
  ...(authorization ? { authorization } : {}),
  ...(channels.length > 0
    ? {
        syncInvoker: (gateway) => {
          const channel = channels.shift();
          return channel ? new ReplicaInvoker({ port: channel, gateway, gatewayHost }) : gateway;
        },
      }
    : {}),
});
const stop = answerHub(
  port,
  async () => (await registry.getMetricsAsJSON()) as ConnectorThreadMetrics,
);
await new Promise((resolve) => stop.addEventListener('abort', resolve, { once: true }));
await connectors.stop();
stopped(port);
