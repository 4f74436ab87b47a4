/**
 * MQTT and NATS JetStream connector benchmark, in the shape of bench/kafka.ts: messages published
 * to a broker until the no-op function has answered each, end to end through `fnbus up
 * --connectors mqtt` (mosquitto, QoS 1) and `fnbus up --connectors nats` (nats-server -js, a
 * stream and the connector's durable consumer): messages per second from the first publish to
 * the function's invocation count reaching N, how many were lost (must be 0) or run more than
 * once, and beside each the gateway's sync rate for the same function measured in the same run
 * (`/function/<name>` from 64 connections), with CPU a message and a sync call by part and how
 * the hub's main thread spent the time (its share waiting for a core says how busy the machine
 * was). When OPENFAAS_MQTT_CONNECTOR names a built binary of github.com/openfaas/mqtt-connector,
 * it runs against the same mosquitto and a hub started with `--connectors none`, and its rate is
 * printed beside ours. bench/README.md says how each figure is taken.
 *
 *   npm run bench:brokers   (BENCH_MESSAGES=10000, BENCH_SECONDS=5 of sync load,
 *                            BENCH_MQTT_ORDER=none, BENCH_PARTS=mqtt,openfaas,nats)
 *
 * Needs /usr/sbin/mosquitto and nats-server on the PATH.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { connectAsync } from 'mqtt';
import { Pool } from 'undici';
import { cpuLine, cpuPer, cpuSnapshot, mainThread, syncLoad } from './hub-cpu.js';
import { freePort } from './kafka-broker.js';
import {
  gatewayApi,
  peakRssMb,
  startProcess,
  stopProcess,
  until,
  waitForPort,
} from './processes.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const echoServer = join(root, 'bench', 'echo-server.cjs');
const messages = Number(process.env.BENCH_MESSAGES ?? 10_000);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 64);
const syncSeconds = Number(process.env.BENCH_SECONDS ?? 5);
const maxInflight = process.env.BENCH_MAX_INFLIGHT ?? String(connections);
const mqttOrder = process.env.BENCH_MQTT_ORDER ?? 'none';
const parts = (process.env.BENCH_PARTS ?? 'mqtt,openfaas,nats').split(',');
const openfaasConnector = process.env.OPENFAAS_MQTT_CONNECTOR;
/**
 * Messages sent before the measure, once the connector takes them, until the path is warm (as
 * the sync load warms up for a second before its measure).
 */
const warmup = Number(process.env.BENCH_WARMUP ?? 5000);
const body = 'hello world';

interface Result {
  label: string;
  perSecond: number;
  lost: number;
  duplicated: number;
  publishSeconds: number;
  syncPerSecond: number;
  cpu: Record<string, number>;
  syncCpu: Record<string, number>;
  main: ReturnType<typeof mainThread>;
  syncMain: ReturnType<typeof mainThread>;
}

interface Hub {
  child: ChildProcess;
  url: string;
  pool: Pool;
}

async function startHub(connectors: string, env: NodeJS.ProcessEnv): Promise<Hub> {
  const port = await freePort();
  const stateDir = mkdtempSync(join(tmpdir(), 'fnbus-bench-brokers-hub-'));
  const child = startProcess(
    join(root, 'bin', 'fnbus'),
    [
      'up',
      '--port',
      String(port),
      '--state-dir',
      stateDir,
      '--queue',
      'local',
      '--connectors',
      connectors,
    ],
    // On loopback, set up through /system without credentials.
    {
      ...process.env,
      basic_auth: 'false',
      rebuild_interval: '500ms',
      print_response: 'false',
      max_inflight: maxInflight,
      ...env,
    },
  );
  await waitForPort(port);
  const url = `http://127.0.0.1:${port}`;
  return { child, url, pool: new Pool(url, { connections }) };
}

async function stopHub(hub: Hub): Promise<void> {
  await hub.pool.close();
  await stopProcess(hub.child);
}

interface Part {
  label: string;
  hub: Hub;
  name: string;
  topic: string;
  /** Processes outside the hub whose CPU counts: the broker, another connector. */
  others: () => Record<string, number>;
  /** Publishes `count` messages to `topic`, resolved once the broker took them all. */
  publish: (count: number) => Promise<void>;
  /** Started once the function is deployed (OpenFaaS's connector). */
  beforeWarmup?: () => void;
}

async function measure(part: Part): Promise<Result> {
  const { hub, name } = part;
  const api = (method: 'GET' | 'POST', path: string, json?: unknown) =>
    gatewayApi(hub.pool, method, path, json);
  const calls = async () => {
    const { text } = await api('GET', `/system/function/${name}`);
    return (JSON.parse(text) as { invocationCount?: number }).invocationCount ?? 0;
  };
  const deployed = await api('POST', '/system/functions', {
    service: name,
    image: 'bench/echo',
    envProcess: `node ${echoServer}`,
    envVars: { mode: 'http' },
    // One replica throughout, as bench/kafka.ts.
    labels: { 'com.openfaas.scale.min': '1', 'com.openfaas.scale.max': '1' },
    annotations: { topic: part.topic },
  });
  if (deployed.status !== 202) throw new Error(`deploy ${name}: ${deployed.status}`);
  await until(
    async () =>
      (await api('GET', `/system/function/${name}`)).text.includes('"availableReplicas":1'),
    `${name} to be ready`,
  );
  part.beforeWarmup?.();

  // Until the connector has subscribed: one message at a time (an MQTT message published before
  // the subscription is dropped by the broker; JetStream keeps it), then a warm-up batch.
  await until(
    async () => {
      await part.publish(1);
      await sleep(200);
      return (await calls()) > 0;
    },
    `${part.label}: the first message through`,
    { timeoutMs: 60_000, everyMs: 0 },
  );
  const beforeWarmup = await calls();
  await part.publish(warmup);
  await until(async () => (await calls()) >= beforeWarmup + warmup, `${part.label}: warm-up`, {
    timeoutMs: 120_000,
    everyMs: 50,
  });
  await sleep(1000);

  // The gateway's sync rate for the same function, with the connector subscribed and idle.
  await syncLoad(hub.pool, name, 1, connections, body);
  const syncBefore = await cpuSnapshot(hub.child.pid!, part.others());
  const syncCalls = await calls();
  const syncPerSecond = await syncLoad(hub.pool, name, syncSeconds, connections, body);
  const syncAfter = await cpuSnapshot(hub.child.pid!, part.others());
  const syncCpu = cpuPer(syncBefore, syncAfter, (await calls()) - syncCalls);
  const syncMain = mainThread(syncBefore, syncAfter);

  const base = await calls();
  const cpuBefore = await cpuSnapshot(hub.child.pid!, part.others());
  const startedAt = performance.now();
  let publishedAt = startedAt;
  const publishing = part.publish(messages).then(() => (publishedAt = performance.now()));
  // The answered count every 10 ms on its own connection, until every message has an answer or
  // none has come for 30 s.
  const poller = new Pool(hub.url, { connections: 1 });
  let lastProgress = performance.now();
  let count = 0;
  let endedAt = 0;
  try {
    while (count < messages && performance.now() - lastProgress < 30_000) {
      const res = await poller.request({ method: 'GET', path: `/system/function/${name}` });
      const ran =
        ((JSON.parse(await res.body.text()) as { invocationCount?: number }).invocationCount ?? 0) -
        base;
      const now = performance.now();
      if (ran > count) lastProgress = now;
      count = ran;
      if (count >= messages) endedAt = now;
      else await sleep(10);
    }
  } finally {
    await poller.close();
  }
  await publishing;
  if (endedAt === 0) endedAt = lastProgress;
  const cpuAfter = await cpuSnapshot(hub.child.pid!, part.others());
  // Any redelivery would have run by now.
  await sleep(1000);
  const ran = (await calls()) - base;
  return {
    label: part.label,
    perSecond: Math.min(count, messages) / ((endedAt - startedAt) / 1000),
    lost: Math.max(0, messages - ran),
    duplicated: Math.max(0, ran - messages),
    publishSeconds: (publishedAt - startedAt) / 1000,
    syncPerSecond,
    cpu: cpuPer(cpuBefore, cpuAfter, Math.min(count, messages)),
    syncCpu,
    main: mainThread(cpuBefore, cpuAfter),
    syncMain,
  };
}

const n = (value: number) => Math.round(value).toLocaleString('en-US');

function line(r: Result): string {
  return (
    `${r.label.padEnd(16)} ${n(r.perSecond).padStart(7)} messages/s  ` +
    `${(r.perSecond / r.syncPerSecond).toFixed(2)}x gateway sync ${n(r.syncPerSecond)} req/s` +
    `  lost ${r.lost}  duplicates ${r.duplicated}  (published in ${r.publishSeconds.toFixed(2)} s)`
  );
}

function report(result: Result, unit: string): void {
  process.stdout.write(`${line(result)}\n`);
  process.stdout.write(`${cpuLine(`CPU a ${unit}`, result.cpu, result.main)}\n`);
  process.stdout.write(`${cpuLine('CPU a sync call', result.syncCpu, result.syncMain)}\n`);
}

/** Debian's mosquitto on a free loopback port, anonymous, no persistence. */
async function startMosquitto(): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'fnbus-bench-mosquitto-'));
  const config = join(dir, 'mosquitto.conf');
  writeFileSync(
    config,
    [
      // Run as root, mosquitto would drop to its own user.
      `user ${userInfo().username}`,
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'max_queued_messages 1000000',
      'max_inflight_messages 0',
      '',
    ].join('\n'),
  );
  const child = startProcess('/usr/sbin/mosquitto', ['-c', config], process.env);
  await waitForPort(port);
  return { child, port };
}

async function startNats(): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'fnbus-bench-nats-'));
  const child = startProcess(
    'nats-server',
    ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir],
    process.env,
  );
  await waitForPort(port);
  return { child, port };
}

/** A QoS 1 publisher: batches of 500 publishes awaited together (each resolved at its PUBACK). */
async function mqttPublisher(port: number, topic: string) {
  const client = await connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: `fnbus-bench-pub-${process.pid}-${topic}`,
    clean: true,
  });
  return {
    client,
    publish: async (count: number) => {
      for (let from = 0; from < count; from += 500) {
        const batch = [];
        for (let i = from; i < Math.min(count, from + 500); i++) {
          batch.push(client.publishAsync(topic, body, { qos: 1 }));
        }
        await Promise.all(batch);
      }
    },
  };
}

async function main(): Promise<void> {
  process.stdout.write(
    `${n(messages)} messages a part; publish → answered through fnbus up --connectors` +
      ` mqtt|nats (max_inflight ${maxInflight}, FNBUS_MQTT_ORDER ${mqttOrder});` +
      ` gateway sync: ${connections} connections for ${syncSeconds} s\n`,
  );
  const results: Result[] = [];
  const mosquitto =
    parts.includes('mqtt') || parts.includes('openfaas') ? await startMosquitto() : undefined;
  try {
    if (mosquitto && parts.includes('mqtt')) {
      const topic = 'bench/fnbus';
      const hub = await startHub('mqtt', {
        broker: `mqtt://127.0.0.1:${mosquitto.port}`,
        client_id: `fnbus-bench-${process.pid}`,
        qos: '1',
        FNBUS_MQTT_ORDER: mqttOrder,
      });
      const publisher = await mqttPublisher(mosquitto.port, topic);
      try {
        const result = await measure({
          label: 'mqtt qos1',
          hub,
          name: 'noop-mqtt',
          topic,
          others: () => ({ broker: mosquitto.child.pid! }),
          publish: publisher.publish,
        });
        results.push(result);
        report(result, 'message');
        process.stdout.write(
          `            hub peak RSS: ${(await peakRssMb(hub.child.pid!)).toFixed(0)} MB\n`,
        );
      } finally {
        await publisher.client.endAsync();
        await stopHub(hub);
      }
    }

    if (mosquitto && parts.includes('openfaas')) {
      if (!openfaasConnector) {
        process.stdout.write(
          'openfaas mqtt-connector: skipped (OPENFAAS_MQTT_CONNECTOR not set)\n',
        );
      } else {
        const topic = 'bench/openfaas';
        const hub = await startHub('none', {});
        const publisher = await mqttPublisher(mosquitto.port, topic);
        let connector: ChildProcess | undefined;
        try {
          const result = await measure({
            label: 'openfaas mqtt',
            hub,
            name: 'noop-openfaas',
            topic,
            others: () => ({
              broker: mosquitto.child.pid!,
              ...(connector?.pid ? { 'openfaas connector': connector.pid } : {}),
            }),
            publish: publisher.publish,
            beforeWarmup: () => {
              connector = startProcess(
                openfaasConnector,
                [
                  '-gateway',
                  hub.url,
                  '-broker',
                  `tcp://127.0.0.1:${mosquitto.port}`,
                  '-topic',
                  topic,
                  '-id',
                  `openfaas-bench-${process.pid}`,
                  '-qos',
                  '1',
                  '-gw-username',
                  'admin',
                  '-gw-password',
                  'unused',
                ],
                process.env,
              );
            },
          });
          results.push(result);
          report(result, 'message');
          const ours = results.find((r) => r.label === 'mqtt qos1');
          if (ours) {
            process.stdout.write(
              `            fnbus / openfaas mqtt-connector: ${(ours.perSecond / result.perSecond).toFixed(2)}x (target >= 2x)\n`,
            );
          }
        } finally {
          if (connector) await stopProcess(connector);
          await publisher.client.endAsync();
          await stopHub(hub);
        }
      }
    }
  } finally {
    if (mosquitto) await stopProcess(mosquitto.child);
  }

  if (parts.includes('nats')) {
    const nats = await startNats();
    const stream = `fnbus_bench_${process.pid}`;
    const nc = await natsConnect({ servers: `nats://127.0.0.1:${nats.port}` });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
      const js = jetstream(nc);
      const subject = `${stream}.noop`;
      const hub = await startHub('nats', {
        broker_host: `nats://127.0.0.1:${nats.port}`,
        stream,
      });
      try {
        const result = await measure({
          label: 'nats jetstream',
          hub,
          name: 'noop-nats',
          topic: subject,
          others: () => ({ broker: nats.child.pid! }),
          // Batches of 200 publishes awaited together (each resolved at the stream's ack).
          publish: async (count) => {
            for (let from = 0; from < count; from += 200) {
              const batch = [];
              for (let i = from; i < Math.min(count, from + 200); i++) {
                batch.push(js.publish(subject, body));
              }
              await Promise.all(batch);
            }
          },
        });
        report(result, 'message');
        process.stdout.write(
          `            hub peak RSS: ${(await peakRssMb(hub.child.pid!)).toFixed(0)} MB\n`,
        );
      } finally {
        await stopHub(hub);
      }
    } finally {
      await nc.close();
      await stopProcess(nats.child);
    }
  }
}

await main();
