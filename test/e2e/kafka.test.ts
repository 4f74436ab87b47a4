import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { deployProcess, startHub, stopHub, systemAuth } from '../helpers/hub.js';
import { startKafka, type RunningKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

/** One broker for the file; each test its own topics and group. */
let kafka: RunningKafka;
before(async () => {
  kafka = await startKafka();
});
after(() => kafka?.stop());

let topics = 0;
const topicName = (what: string) => `${what}-${process.pid}-${(topics += 1)}`;

/** A forked function appending a line per call: the Kafka headers, then the body. */
function recorder(file: string, seconds = 0): string {
  const line =
    '$Http_X_Topic|$Http_X_Connector|$Http_X_Kafka_Partition|$Http_X_Kafka_Offset|$Http_X_Kafka_Key|$(cat)';
  return `sh -c 'echo "${line}" >> ${file}; sleep ${seconds}'`;
}

interface Seen {
  topic: string;
  connector: string;
  partition: number;
  offset: number;
  key: string;
  body: string;
}

function seen(file: string): Seen[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [topic = '', connector = '', partition = '', offset = '', key = '', body = ''] =
        line.split('|');
      return { topic, connector, partition: Number(partition), offset: Number(offset), key, body };
    });
}

async function produce(topic: string, count: number, from = 0): Promise<void> {
  const producer = kafka.client().producer();
  await producer.connect();
  try {
    for (let start = from; start < from + count; start += 500) {
      const messages = [];
      for (let n = start; n < Math.min(from + count, start + 500); n++) {
        messages.push({ key: `k${n % 7}`, value: `record-${n}` });
      }
      await producer.send({ topic, messages });
    }
  } finally {
    await producer.disconnect();
  }
}

/** The group's committed offsets summed over the topic's partitions. */
async function committed(group: string, topic: string): Promise<number> {
  const admin = kafka.client().admin();
  await admin.connect();
  try {
    const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return (offsets?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
  } finally {
    await admin.disconnect();
  }
}

const hubEnv = (group: string) => ({
  broker_hosts: kafka.brokers,
  group,
  rebuild_interval: '500ms',
  print_response: 'false',
});

describe('kafka connector in fnbus up', () => {
  it('delivers every record with its headers, commits once answered, and follows new functions', async (t) => {
    const dir = makeTempDir('fnbus-kafka-');
    const file = join(dir, 'seen');
    const orders = topicName('orders');
    await kafka.createTopic(orders, 3);
    const group = `g-${orders}`;
    // Kafka runs on the connectors' thread, the webhook on the gateway's: one /metrics for both.
    const { hub, url } = await startHub(
      ['--connectors', 'kafka,webhook'],
      join(dir, 'state'),
      hubEnv(group),
    );
    t.after(() => stopHub(hub));
    await deployProcess(url, 'orders-fn', recorder(file), { topic: orders });
    await produce(orders, 150);

    await waitFor(() => new Set(seen(file).map((s) => s.body)).size === 150, {
      timeoutMs: 60_000,
      what: 'all 150 records delivered',
    });
    for (const record of seen(file)) {
      assert.equal(record.topic, orders);
      assert.equal(record.connector, 'kafka-connector');
      assert.ok(record.partition >= 0 && record.partition < 3);
      assert.match(record.key, /^k[0-6]$/);
    }
    // Per partition (the default), each partition's records come in offset order.
    const byPartition = new Map<number, number[]>();
    for (const record of seen(file)) {
      byPartition.set(record.partition, [
        ...(byPartition.get(record.partition) ?? []),
        record.offset,
      ]);
    }
    for (const offsets of byPartition.values()) {
      assert.deepEqual(
        offsets,
        [...offsets].sort((a, b) => a - b),
      );
    }
    await waitFor(async () => (await committed(group, orders)) === 150, {
      timeoutMs: 15_000,
      what: 'offsets committed past every record',
    });
    const metrics = (await request(`${url}/metrics`, { headers: systemAuth })).text;
    const sum = (name: string) =>
      [
        ...metrics.matchAll(
          new RegExp(`^${name}\\{topic="${orders}",partition="\\d"\\} (\\d+)$`, 'gm'),
        ),
      ]
        .map((m) => Number(m[1]))
        .reduce((a, b) => a + b, 0);
    assert.equal(sum('fnbus_kafka_records_consumed_total'), 150, metrics);
    assert.equal(sum('fnbus_kafka_committed_offset'), 150);
    assert.equal(sum('fnbus_kafka_lag'), 0);

    // A webhook, delivered on the gateway's thread: its deliveries and Kafka's in one family.
    const hooks = topicName('hooks');
    await deployProcess(url, 'hook-fn', recorder(join(dir, 'hooks')), { topic: hooks });
    await waitFor(
      async () =>
        (await request(`${url}/webhook/${hooks}`, { method: 'POST', body: 'hi' })).status === 202,
      { timeoutMs: 15_000, what: 'the webhook taken' },
    );
    const both = (await request(`${url}/metrics`, { headers: systemAuth })).text;
    assert.equal(both.match(/^# TYPE fnbus_connector_deliveries_total /gm)?.length, 1, both);
    const deliveries = (connector: string) =>
      [
        ...both.matchAll(
          new RegExp(
            `^fnbus_connector_deliveries_total\\{[^}]*connector="${connector}"[^}]*\\} (\\d+)$`,
            'gm',
          ),
        ),
      ].reduce((total, m) => total + Number(m[1]), 0);
    assert.equal(deliveries('kafka-connector'), 150, both);
    assert.ok(deliveries('webhook-connector') >= 1, both);

    // A function on a topic made later: subscribed without a restart.
    const later = topicName('later');
    await kafka.createTopic(later, 1);
    const laterFile = join(dir, 'later');
    await deployProcess(url, 'later-fn', recorder(laterFile), { topic: later });
    await waitFor(
      async () => {
        await produce(later, 1);
        return seen(laterFile).length > 0;
      },
      { timeoutMs: 30_000, intervalMs: 2000, what: 'a record on the later topic' },
    );
    assert.equal(seen(laterFile)[0]?.topic, later);
  });

  it('delivers every record at least once across a kill -9 of the hub mid-stream', async (t) => {
    const dir = makeTempDir('fnbus-kafka-');
    const file = join(dir, 'seen');
    const stream = topicName('stream');
    await kafka.createTopic(stream, 2);
    const group = `g-${stream}`;
    const state = join(dir, 'state');
    const first = await startHub(['--connectors', 'kafka'], state, hubEnv(group));
    await deployProcess(first.url, 'stream-fn', recorder(file), {
      topic: stream,
      'fnbus.kafka.order': 'key',
    });
    const total = 600;
    await produce(stream, total);
    // Killed once some records are committed and some not.
    await waitFor(async () => seen(file).length >= 100 && (await committed(group, stream)) > 0, {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: 'records delivered and committed',
    });
    first.hub.kill('SIGKILL');
    await new Promise((resolve) => first.hub.once('exit', resolve));
    const atKill = seen(file).length;
    const committedAtKill = await committed(group, stream);

    const second = await startHub(['--connectors', 'kafka'], state, hubEnv(group), first.port);
    t.after(() => stopHub(second.hub));
    await waitFor(() => new Set(seen(file).map((s) => s.body)).size === total, {
      timeoutMs: 90_000,
      what: `every record delivered (${atKill} before the kill)`,
    });
    const bodies = seen(file).map((s) => s.body);
    const missing = Array.from({ length: total }, (_, n) => `record-${n}`).filter(
      (body) => !bodies.includes(body),
    );
    assert.deepEqual(missing, []);
    const twice = bodies.length - total;
    t.diagnostic(
      `${twice} delivered twice of ${total}: ${atKill} before the kill, ${committedAtKill} committed`,
    );
    // Redelivered: what ran and was not committed yet, no more.
    assert.ok(twice <= atKill - committedAtKill + 64, `${twice} delivered twice`);
    await waitFor(async () => (await committed(group, stream)) === total, {
      timeoutMs: 15_000,
      what: 'offsets committed past every record',
    });
  });

  it("writes the functions' answers to the reply topic, records failed for good to the dead-letter topic", async (t) => {
    const dir = makeTempDir('fnbus-kafka-');
    const asks = topicName('asks');
    const answers = topicName('answers');
    const dead = topicName('dead');
    for (const topic of [asks, answers, dead]) await kafka.createTopic(topic, 1);
    const started = await startHub(['--connectors', 'kafka'], join(dir, 'state'), {
      ...hubEnv(`g-${asks}`),
      reply_topic: answers,
      dead_letter_topic: dead,
      max_retry_attempts: '2',
      initial_retry_wait: '50ms',
      max_retry_wait: '100ms',
    });
    const { hub, url } = started;
    t.after(() => stopHub(hub));
    await deployProcess(url, 'upper', 'tr a-z A-Z', { topic: asks });
    await deployProcess(url, 'broken', "sh -c 'cat >/dev/null; exit 1'", { topic: asks });
    // A record reaches the functions in the connector's map when it is read; the map takes up to
    // one rebuild interval (500 ms) to include a function just deployed.
    await sleep(1500);
    const producer = kafka.client().producer();
    await producer.connect();
    await producer.send({ topic: asks, messages: [{ key: 'q1', value: 'hello' }] });
    await producer.disconnect();

    const consumer = kafka.client().consumer({ groupId: `reader-${asks}`, maxWaitTimeInMs: 200 });
    t.after(() => consumer.disconnect());
    await consumer.connect();
    await consumer.subscribe({ topics: [answers, dead], fromBeginning: true });
    const read: { topic: string; key: string; value: string; headers: Record<string, string> }[] =
      [];
    await consumer.run({
      eachMessage: ({ topic, message }) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {})) {
          headers[name] = String(value);
        }
        read.push({ topic, key: String(message.key), value: String(message.value), headers });
        return Promise.resolve();
      },
    });
    // The failing function's last answer (500) is written to the reply topic too.
    await waitFor(
      () =>
        read.some((r) => r.topic === dead) &&
        read.some((r) => r.topic === answers && r.headers['X-Status'] === '200'),
      {
        timeoutMs: 30_000,
        what: 'an answer and a dead letter',
        detail: () =>
          `read ${JSON.stringify(read)}; the hub said:\n${started.output().slice(-4000)}`,
      },
    );
    const answer = read.find((r) => r.topic === answers && r.headers['X-Status'] === '200');
    assert.equal(answer?.value, 'HELLO');
    assert.equal(answer?.key, 'q1');
    assert.equal(answer?.headers['X-Function'], 'upper.openfaas-fn');
    assert.equal(answer?.headers['X-Status'], '200');
    assert.equal(answer?.headers['X-Source'], `${asks}/0/0`);
    const letter = read.find((r) => r.topic === dead);
    assert.equal(letter?.value, 'hello');
    assert.equal(letter?.key, 'q1');
    assert.equal(letter?.headers['X-Function'], 'broken.openfaas-fn');
    assert.match(letter?.headers['X-Error'] ?? '', /500 after 2 attempts/);
  });
});
