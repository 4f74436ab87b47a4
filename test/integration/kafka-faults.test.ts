import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DeadLetterPage } from '../../core/queue.js';
import { runCli, startCli, stopCli } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import {
  connectorAuthEnv,
  deployProcess,
  hubCliEnv,
  startHub,
  stopHub,
  systemAuth,
} from '../helpers/hub.js';
import { startKafka, type RunningKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, makeTempDir } from '../helpers/watchdog.js';

let kafka: RunningKafka;
before(async () => {
  kafka = await startKafka();
});
after(() => kafka?.stop());

let made = 0;
const unique = (what: string) => `${what}-${process.pid}-${(made += 1)}`;

interface Taken {
  partition: number;
  offset: number;
  key: string;
  body: string;
}

function taken(file: string): Taken[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [partition = '', offset = '', key = '', body = ''] = line.split('|');
      return { partition: Number(partition), offset: Number(offset), key, body };
    });
}

/** The bodies not taken yet of `record-0` … `record-<total - 1>`. */
function missing(file: string, total: number): string[] {
  const bodies = new Set(taken(file).map((t) => t.body));
  return Array.from({ length: total }, (_, n) => `record-${n}`).filter((b) => !bodies.has(b));
}

async function produce(topic: string, bodies: string[], partition?: number): Promise<void> {
  const producer = kafka.client().producer();
  await producer.connect();
  try {
    for (let i = 0; i < bodies.length; i += 1000) {
      await producer.send({
        topic,
        messages: bodies.slice(i, i + 1000).map((value, n) => ({
          key: `k${(i + n) % 13}`,
          value,
          ...(partition === undefined ? {} : { partition }),
        })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

const numbered = (from: number, count: number) =>
  Array.from({ length: count }, (_, n) => `record-${from + n}`);

/** The http-mode recorder (fixtures/event-recorder.cjs) on `topic`. */
async function deployRecorder(
  url: string,
  name: string,
  topic: string,
  dir: string,
  annotations: Record<string, string> = {},
): Promise<{ file: string; down: string }> {
  const file = join(dir, `${name}.taken`);
  const down = join(dir, `${name}.down`);
  await deployProcess(
    url,
    name,
    `node ${fixture('event-recorder.cjs')}`,
    { topic, ...annotations },
    { mode: 'http', RECORD_FILE: file, DOWN_FILE: down },
  );
  return { file, down };
}

/** `fnbus connector kafka` alone against `gateway`. */
function startKafkaConnector(gateway: string, group: string, env: Record<string, string> = {}) {
  return startCli(['connector', 'kafka', '--gateway', gateway], {
    ...connectorAuthEnv(),
    broker_hosts: kafka.brokers,
    group,
    rebuild_interval: '500ms',
    metrics_port: '0',
    print_response: 'false',
    ...env,
  });
}

/** A function's dead letters in the hub's store. */
async function letters(url: string, fn: string): Promise<DeadLetterPage['items']> {
  const res = await request(`${url}/system/dead-letters?function=${fn}.openfaas-fn&limit=500`, {
    headers: systemAuth,
  });
  return (JSON.parse(res.text) as DeadLetterPage).items;
}

describe('kafka connector faults', () => {
  it('10,000 records through a kill -9 of the connector and a restart: each at least once', async (t) => {
    const dir = makeTempDir('fnbus-kafka-faults-');
    const { hub, url } = await startHub(['--connectors', 'none'], join(dir, 'state'));
    t.after(() => stopHub(hub));
    const topic = unique('stream');
    await kafka.createTopic(topic, 4);
    const group = unique('group');
    const { file } = await deployRecorder(url, 'numbered', topic, dir, {
      'fnbus.kafka.order': 'key',
    });
    const total = 10_000;
    await produce(topic, numbered(0, total));
    const first = startKafkaConnector(url, group);
    t.after(() => stopCli(first));
    await waitFor(() => taken(file).length >= 2000, {
      timeoutMs: 90_000,
      intervalMs: 50,
      what: '2,000 records taken',
    });
    await stopCli(first, 'SIGKILL');
    const atKill = taken(file).length;
    const second = startKafkaConnector(url, group);
    t.after(() => stopCli(second));
    await waitFor(() => missing(file, total).length === 0, {
      timeoutMs: 120_000,
      intervalMs: 200,
      what: `every record taken (${atKill} before the kill)`,
    });
    t.diagnostic(
      `${taken(file).length - total} of ${total} taken twice; ${atKill} taken before the kill`,
    );
  });

  it('a replica joining mid-stream and one killed: the group moves partitions, nothing lost', async (t) => {
    const dir = makeTempDir('fnbus-kafka-faults-');
    const { hub, url } = await startHub(['--connectors', 'none'], join(dir, 'state'));
    t.after(() => stopHub(hub));
    const topic = unique('shared');
    await kafka.createTopic(topic, 6);
    const group = unique('group');
    const { file } = await deployRecorder(url, 'shared', topic, dir);
    const replicas = [startKafkaConnector(url, group)];
    t.after(() => Promise.all(replicas.map((replica) => stopCli(replica))));
    const admin = kafka.client().admin();
    await admin.connect();
    t.after(() => admin.disconnect());
    const members = async () => {
      const { groups } = await admin.describeGroups([group]);
      return groups[0]?.state === 'Stable' ? (groups[0]?.members.length ?? 0) : 0;
    };
    await produce(topic, numbered(0, 5000));
    await waitFor(() => taken(file).length >= 200, { timeoutMs: 30_000, what: 'records taken' });
    // A second replica joins mid-stream: the group rebalances, partitions move with records in hand.
    replicas.push(startKafkaConnector(url, group));
    await waitFor(async () => (await members()) === 2, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'two members in the group',
    });
    await stopCli(replicas[0]!, 'SIGKILL');
    await produce(topic, numbered(5000, 1000));
    await waitFor(() => missing(file, 6000).length === 0, {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: 'every record taken by the replica left',
    });
  });

  it('a poison record is dead-lettered while its partition and the others go on', async (t) => {
    const dir = makeTempDir('fnbus-kafka-faults-');
    const { hub, url } = await startHub(['--connectors', 'none'], join(dir, 'state'));
    t.after(() => stopHub(hub));
    const topic = unique('poisoned');
    await kafka.createTopic(topic, 3);
    const { file } = await deployRecorder(url, 'careful', topic, dir);
    const connector = startKafkaConnector(url, unique('group'), {
      max_retry_attempts: '3',
      initial_retry_wait: '50ms',
      max_retry_wait: '100ms',
    });
    t.after(() => stopCli(connector));
    await produce(topic, ['poison-1'], 0);
    await produce(topic, numbered(0, 300));
    await waitFor(() => missing(file, 300).length === 0, {
      timeoutMs: 60_000,
      what: 'every other record taken, those after the poison in its partition too',
    });
    const kept = await waitFor(
      async () => {
        const items = await letters(url, 'careful');
        return items.length > 0 && items;
      },
      { timeoutMs: 10_000, what: 'the poison record in the dead letters' },
    );
    assert.equal(kept.length, 1);
    assert.equal(kept[0]?.lastStatus, 500);
  });

  it('a function down for a while: retries, dead letters, recovery; a broker restart loses none', async (t) => {
    const dir = makeTempDir('fnbus-kafka-faults-');
    const { hub, url } = await startHub(['--connectors', 'none'], join(dir, 'state'));
    t.after(() => stopHub(hub));
    const topic = unique('outage');
    await kafka.createTopic(topic, 2);
    const { file, down } = await deployRecorder(url, 'flaky', topic, dir);
    const connector = startKafkaConnector(url, unique('group'), {
      initial_retry_wait: '100ms',
      max_retry_wait: '500ms',
    });
    t.after(() => stopCli(connector));
    // Down: each record's calls are retried, then dead-lettered; the partition goes on.
    writeFileSync(down, '');
    await produce(topic, numbered(0, 50));
    await waitFor(async () => (await letters(url, 'flaky')).length === 50, {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: 'the records of the outage in the dead letters',
    });
    rmSync(down);
    await produce(topic, numbered(50, 150));
    await waitFor(() => missing(file, 200).length === 50, {
      timeoutMs: 60_000,
      what: 'the records after the outage taken',
    });
    // Redriven, the outage's records reach the function too.
    const redriven = await runCli(
      ['dlq', 'redrive', '--function', 'flaky', '--gateway', url],
      hubCliEnv,
    );
    assert.equal(redriven.code, 0, redriven.stderr);
    assert.match(redriven.stdout, /queued again: 50/);
    await waitFor(() => missing(file, 200).length === 0, {
      timeoutMs: 30_000,
      what: 'the redriven records taken',
    });

    await produce(topic, numbered(200, 300));
    await kafka.restart();
    await produce(topic, numbered(500, 300));
    await waitFor(() => missing(file, 800).length === 0, {
      timeoutMs: 90_000,
      intervalMs: 200,
      what: 'every record taken across the broker restart',
    });
    // Stopped, it exits: kafkajs can keep a socket to the restarted broker open for 10 minutes.
    const stopping = performance.now();
    await stopCli(connector);
    assert.ok(performance.now() - stopping < 15_000, 'the connector exits once stopped');
  });

  it('hands a batching function many records a call; a record it refuses alone is retried, then dead-lettered', async (t) => {
    const dir = makeTempDir('fnbus-kafka-faults-');
    const { hub, url } = await startHub(['--connectors', 'none'], join(dir, 'state'));
    t.after(() => stopHub(hub));
    const topic = unique('batched');
    await kafka.createTopic(topic, 2);
    const file = join(dir, 'values');
    const calls = join(dir, 'calls');
    await deployProcess(
      url,
      'batcher',
      `node ${fixture('kafka-batch-function.cjs')}`,
      { topic, 'fnbus.kafka.batch': '50' },
      { mode: 'http', RECORD_FILE: file, CALLS_FILE: calls },
    );
    const bodies = numbered(0, 400);
    bodies[10] = 'bad-10';
    bodies[250] = 'bad-250';
    await produce(topic, bodies);
    const connector = startKafkaConnector(url, unique('group'), {
      max_retry_attempts: '2',
      initial_retry_wait: '50ms',
      max_retry_wait: '100ms',
    });
    t.after(() => stopCli(connector));
    const kept = await waitFor(
      async () => {
        const items = await letters(url, 'batcher');
        return items.length === 2 && items;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: 'the two refused records dead-lettered' },
    );
    assert.deepEqual(
      kept.map((letter) => letter.lastStatus),
      [500, 500],
    );
    const values = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const want = bodies.filter((body) => !body.startsWith('bad'));
    assert.deepEqual(
      want.filter((body) => !values.includes(body)),
      [],
    );
    const sizes = readFileSync(calls, 'utf8').split('\n').filter(Boolean).map(Number);
    // 398 records in batches of up to 50, then each refused record alone, twice.
    assert.ok(Math.max(...sizes) > 1 && Math.max(...sizes) <= 50, `call sizes ${sizes.join(',')}`);
    assert.equal(
      sizes.filter((size) => size === 1).length >= 4,
      true,
      `call sizes ${sizes.join(',')}`,
    );
    assert.ok(sizes.length < 60, `${sizes.length} calls for 400 records`);
  });
});
