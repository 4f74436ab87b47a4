/**
 * Kafka connector benchmark: records produced to a topic until the no-op function has answered
 * each, end to end through `fnbus up --connectors kafka`, for each order mode
 * (`fnbus.kafka.order`: partition, key, none): records per second and how many were lost (must
 * be 0) or run more than once. Beside each mode, from the same run: the gateway's sync rate for
 * the same function (`/function/<name>` from 64 connections; target for key and none ≥ 0.8× it)
 * and kafkajs's raw consume rate on the same broker and topic (a consumer group whose eachBatch
 * does nothing but resolve), which bounds what any kafkajs consumer can reach. Each mode also
 * prints CPU a record and a sync call by part (the hub's threads, the functions, the broker), how
 * the hub's main thread spent the time, and at the end the hub's peak RSS. bench/README.md says
 * how each figure is taken.
 *
 *   npm run bench:kafka     (BENCH_RECORDS=20000, BENCH_KEYS=1000, BENCH_PARTITIONS=6,
 *                            BENCH_MODES=partition,key,none, BENCH_SECONDS=5 of sync load)
 *
 * Needs Java 17+ and Kafka's jars (`bash test/kafka/kafka-jars.sh`; FNBUS_KAFKA_JARS).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Partitioners, type Admin, type Kafka } from 'kafkajs';
import { Pool } from 'undici';
import { cpuLine, cpuPer, cpuSnapshot, mainThread, syncLoad } from './hub-cpu.js';
import { freePort, startKafka, type BenchKafka } from './kafka-broker.js';
import {
  gatewayApi,
  peakRssMb,
  percentile,
  startProcess,
  stopProcess,
  until,
  waitForPort,
} from './processes.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const echoServer = join(root, 'bench', 'echo-server.cjs');
const records = Number(process.env.BENCH_RECORDS ?? 20_000);
const keys = Number(process.env.BENCH_KEYS ?? 1000);
const partitions = Number(process.env.BENCH_PARTITIONS ?? 6);
const modes = (process.env.BENCH_MODES ?? 'partition,key,none,batch').split(',');
const connections = Number(process.env.BENCH_CONNECTIONS ?? 64);
const syncSeconds = Number(process.env.BENCH_SECONDS ?? 5);
/** The connector's calls in flight at once: as many as the sync load's connections. */
const maxInflight = process.env.BENCH_MAX_INFLIGHT ?? String(connections);
/**
 * Records sent before the measure, until the group has joined and the path is warm: about a
 * second's worth, as the sync load warms up for a second before its measure (V8 compiles the
 * hot code of each path during its first thousands of calls).
 */
const warmup = Number(process.env.BENCH_WARMUP ?? 10_000);
const body = 'hello world';
const target = 0.8;

interface Result {
  mode: string;
  perSecond: number;
  /**
   * Produce → answered, from the produced and answered counts over time (see latencies()): with
   * every record produced in well under a second, mostly the backlog's age.
   */
  p50Ms: number;
  p99Ms: number;
  /** From the function's invocation count: records short of it, and invocations beyond. */
  lost: number;
  duplicated: number;
  /** Every partition's committed offset at its end. */
  committed: boolean;
  produceSeconds: number;
  syncPerSecond: number;
  raw: number;
  /** CPU µs a record of each of the hub's threads (by name), its functions' processes, the broker. */
  cpu: Record<string, number>;
  /** The same, a sync request. */
  syncCpu: Record<string, number>;
  main: ReturnType<typeof mainThread>;
  syncMain: ReturnType<typeof mainThread>;
}

/** Sends `count` keyed records to `topic` in batches of 1,000, one batch at a time. */
async function produce(
  kafka: Kafka,
  topic: string,
  count: number,
  sent: (at: number, total: number) => void = () => {},
): Promise<void> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    for (let from = 0; from < count; from += 1000) {
      const messages = [];
      for (let n = from; n < Math.min(count, from + 1000); n++) {
        messages.push({ key: `k${n % keys}`, value: body });
      }
      // Each record of the batch counts as produced when its send began.
      sent(performance.now(), from);
      await producer.send({ topic, messages });
    }
  } finally {
    await producer.disconnect();
  }
}

/** Whether the group's committed offset is at the end of every partition of `topic`. */
async function allCommitted(kafka: Kafka, group: string, topic: string): Promise<boolean> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    const at = new Map(committed?.partitions.map((p) => [p.partition, p.offset]) ?? []);
    return ends.every((end) => at.get(end.partition) === end.high);
  } finally {
    await admin.disconnect();
  }
}

/** The group's committed offsets over every partition of `topic`: records done, for batches. */
async function committedSum(admin: Admin, group: string, topic: string): Promise<number> {
  const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  return (committed?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
}

/**
 * kafkajs alone on the same topic: a new group from the oldest record, eachBatch counting and
 * resolving its last offset; records a second from the group's first fetch request to the last
 * record handed over (the join before it not counted).
 */
async function rawConsume(kafka: Kafka, topic: string, total: number, round: number) {
  const consumer = kafka.consumer({
    groupId: `fnbus-bench-raw-${topic}-${round}`,
    maxWaitTimeInMs: 100,
    allowAutoTopicCreation: false,
  });
  let first = 0;
  consumer.on(consumer.events.FETCH_START, () => {
    if (first === 0) first = performance.now();
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let seen = 0;
    let last = 0;
    const done = new Promise<void>((resolve) => {
      void consumer.run({
        partitionsConsumedConcurrently: partitions,
        eachBatch: (payload) => {
          seen += payload.batch.messages.length;
          const lastMessage = payload.batch.messages.at(-1);
          if (lastMessage) payload.resolveOffset(lastMessage.offset);
          if (seen >= total) {
            last = performance.now();
            resolve();
          }
          return Promise.resolve();
        },
      });
    });
    const timeout = new AbortController();
    await Promise.race([
      done,
      sleep(60_000, undefined, { signal: timeout.signal }).then(
        () => Promise.reject(new Error(`raw consumer: ${seen} of ${total} records in 60 s`)),
        () => undefined,
      ),
    ]).finally(() => timeout.abort());
    return total / Math.max((last - first) / 1000, 0.001);
  } finally {
    await consumer.disconnect();
  }
}

/** rawConsume three times, each its own group: the median. */
async function rawRate(kafka: Kafka, topic: string, total: number): Promise<number> {
  const rates = [];
  for (let round = 0; round < 3; round++) rates.push(await rawConsume(kafka, topic, total, round));
  return rates.sort((a, b) => a - b)[1]!;
}

/**
 * Produce → answered latencies, from the produced count over time (`sent`: each batch's send
 * start) and the function's answered count over time (`answered`: polled samples): the k-th
 * record answered is matched with the k-th produced. Exact when records are answered in the
 * order produced, an estimate of the distribution otherwise (its mean is exact: Little's law).
 * Sorted, in ms.
 */
function latencies(
  sent: { at: number; before: number }[],
  answered: { at: number; count: number }[],
  count: number,
): number[] {
  const out: number[] = [];
  let batch = 0;
  let sample = 0;
  for (let k = 1; k <= count; k++) {
    while (batch + 1 < sent.length && sent[batch + 1]!.before < k) batch += 1;
    while (sample < answered.length && answered[sample]!.count < k) sample += 1;
    if (sample === answered.length) break;
    out.push(answered[sample]!.at - sent[batch]!.at);
  }
  return out.sort((a, b) => a - b);
}

async function measure(
  mode: string,
  kafka: BenchKafka,
  gateway: Pool,
  hubUrl: string,
  hubPid: number,
  group: string,
): Promise<Result> {
  const name = `noop-${mode}`;
  const topic = `fnbus-bench-${mode}-${process.pid}`;
  const client = kafka.client();
  const api = (method: 'GET' | 'POST', path: string, json?: unknown) =>
    gatewayApi(gateway, method, path, json);
  const calls = async () => {
    const { text } = await api('GET', `/system/function/${name}`);
    return (JSON.parse(text) as { invocationCount?: number }).invocationCount ?? 0;
  };
  // Batches: records done are counted from the committed offsets (a call takes 100), so a
  // batch's rate is a little low (commits go out every second); else from the function's calls.
  const batch = mode === 'batch';
  const admin = client.admin();
  await admin.connect();
  const invocations = batch ? () => committedSum(admin, group, topic) : calls;

  // The topic first: the connector subscribes to a function's topic once the brokers have it.
  await kafka.createTopic(topic, partitions);
  const deployed = await api('POST', '/system/functions', {
    service: name,
    image: 'bench/echo',
    envProcess: `node ${echoServer}`,
    envVars: { mode: 'http' },
    // One replica throughout: the gateway's autoscaler would add one after ~5 s of load and take
    // it away later, a process started or stopped in the middle of a measure.
    labels: { 'com.openfaas.scale.min': '1', 'com.openfaas.scale.max': '1' },
    annotations: batch
      ? { topic, 'fnbus.kafka.batch': '100' }
      : { topic, 'fnbus.kafka.order': mode },
  });
  if (deployed.status !== 202) throw new Error(`deploy ${name}: ${deployed.status}`);
  await until(
    async () =>
      (await api('GET', `/system/function/${name}`)).text.includes('"availableReplicas":1'),
    `${name} to be ready`,
  );

  // Warm-up: until the group has joined and records flow (a fresh group's first join can wait).
  await produce(client, topic, warmup);
  await until(async () => (await invocations()) >= warmup, 'the warm-up records', {
    timeoutMs: 120_000,
    everyMs: 100,
  });

  // The gateway's sync rate for the same function, now, with the connector subscribed and idle.
  await syncLoad(gateway, name, 1, connections, body);
  const syncBefore = await cpuSnapshot(hubPid, { broker: kafka.process.pid! });
  const syncCalls = await calls();
  const syncPerSecond = await syncLoad(gateway, name, syncSeconds, connections, body);
  const syncAfter = await cpuSnapshot(hubPid, { broker: kafka.process.pid! });
  const syncCpu = cpuPer(syncBefore, syncAfter, (await calls()) - syncCalls);
  const syncMain = mainThread(syncBefore, syncAfter);

  const base = await invocations();
  const cpuBefore = await cpuSnapshot(hubPid, { broker: kafka.process.pid! });
  const sent: { at: number; before: number }[] = [];
  const answered: { at: number; count: number }[] = [];
  const startedAt = performance.now();
  let producedAt = startedAt;
  const producing = produce(client, topic, records, (at, before) => sent.push({ at, before })).then(
    () => (producedAt = performance.now()),
  );
  // The answered count every 10 ms, on its own connection, until every record has an answer or
  // none has come for 30 s.
  const poller = new Pool(hubUrl, { connections: 1 });
  let lastProgress = performance.now();
  let count = 0;
  try {
    while (count < records && performance.now() - lastProgress < 30_000) {
      let ran: number;
      if (batch) {
        ran = (await invocations()) - base;
      } else {
        const res = await poller.request({ method: 'GET', path: `/system/function/${name}` });
        ran =
          ((JSON.parse(await res.body.text()) as { invocationCount?: number }).invocationCount ??
            0) - base;
      }
      const now = performance.now();
      if (ran > count) lastProgress = now;
      count = ran;
      answered.push({ at: now, count });
      await sleep(10);
    }
  } finally {
    await poller.close();
  }
  await producing;
  const endedAt = answered.find((sample) => sample.count >= records)?.at ?? performance.now();
  const cpuAfter = await cpuSnapshot(hubPid, { broker: kafka.process.pid! });
  const cpu = cpuPer(cpuBefore, cpuAfter, records);
  const main = mainThread(cpuBefore, cpuAfter);
  // From the first record's send (the producer's connection not counted) to the last answer.
  const firstSend = sent[0]?.at ?? startedAt;
  const seconds = (endedAt - firstSend) / 1000;

  // Every record answered: its offset committed (within the connector's 1 s commit interval);
  // then any redelivery would have run.
  let committed = false;
  const deadline = Date.now() + 15_000;
  while (!committed && Date.now() < deadline) {
    committed = await allCommitted(client, group, topic);
    if (!committed) await sleep(200);
  }
  await sleep(1000);
  const ran = (await invocations()) - base;
  await admin.disconnect();
  const sorted = latencies(sent, answered, records);
  const raw = await rawRate(client, topic, warmup + records);
  return {
    mode,
    perSecond: Math.min(count, records) / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    lost: Math.max(0, records - ran),
    duplicated: Math.max(0, ran - records),
    committed,
    produceSeconds: (producedAt - firstSend) / 1000,
    syncPerSecond,
    raw,
    cpu,
    syncCpu,
    main,
    syncMain,
  };
}

const n = (value: number) => Math.round(value).toLocaleString('en-US');

function line(r: Result): string {
  const ratio = r.perSecond / r.syncPerSecond;
  const aimed =
    r.mode === 'partition'
      ? ''
      : r.mode === 'batch'
        ? ' (target >= 20,000 records/s)'
        : ` (target >= ${target.toFixed(2)}x)`;
  return [
    `${r.mode.padEnd(9)} ${n(r.perSecond).padStart(7)} records/s  ${ratio.toFixed(2)}x gateway sync ${n(r.syncPerSecond)} req/s${aimed}`,
    `  raw kafkajs ${n(r.raw)} records/s  lost ${r.lost}  duplicates ${r.mode === 'batch' ? 'n/a (counted by commits)' : r.duplicated}`,
    `  produce→answered p50 ${n(r.p50Ms)} ms p99 ${n(r.p99Ms)} ms`,
    r.committed ? '' : '  NOT ALL COMMITTED',
  ].join('');
}

async function main(): Promise<void> {
  process.stdout.write(
    `${n(records)} records per mode, ${keys} keys, ${partitions} partitions; produce → answered` +
      ` through fnbus up --connectors kafka (max_inflight ${maxInflight});` +
      ` gateway sync: ${connections} connections for ${syncSeconds} s\n`,
  );
  const kafka = await startKafka();
  const hubPort = await freePort();
  const stateDir = mkdtempSync(join(tmpdir(), 'fnbus-bench-kafka-hub-'));
  const group = `fnbus-bench-${process.pid}`;
  const hub = startProcess(
    join(root, 'bin', 'fnbus'),
    [
      'up',
      '--port',
      String(hubPort),
      '--state-dir',
      stateDir,
      '--queue',
      'local',
      '--connectors',
      'kafka',
    ],
    // On loopback, set up through /system without credentials.
    {
      ...process.env,
      basic_auth: 'false',
      broker_hosts: kafka.brokers,
      group,
      rebuild_interval: '500ms',
      print_response: 'false',
      max_inflight: maxInflight,
    },
  );
  const hubUrl = `http://127.0.0.1:${hubPort}`;
  const gateway = new Pool(hubUrl, { connections });
  try {
    await waitForPort(hubPort);
    for (const mode of modes) {
      const result = await measure(mode, kafka, gateway, hubUrl, hub.pid!, group);
      process.stdout.write(`${line(result)}\n`);
      process.stdout.write(`${cpuLine('CPU a record', result.cpu, result.main)}\n`);
      process.stdout.write(`${cpuLine('CPU a sync call', result.syncCpu, result.syncMain)}\n`);
      if (process.env.BENCH_VERBOSE) {
        process.stderr.write(
          `${mode}: ${n(records)} records produced in ${result.produceSeconds.toFixed(2)} s\n`,
        );
      }
    }
    // The hub alone (gateway, connector, in-hub watchdogs; not the functions' processes).
    process.stdout.write(
      `hub peak RSS over the run: ${(await peakRssMb(hub.pid!)).toFixed(0)} MB\n`,
    );
  } finally {
    await gateway.close();
    await stopProcess(hub);
    await kafka.stop();
  }
}

await main();
