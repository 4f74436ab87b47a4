/**
 * A single Apache Kafka broker for the benches: KRaft broker and controller in one JVM, from the
 * jars test/kafka/kafka-jars.sh fetches (FNBUS_KAFKA_JARS, else ~/.cache/fnbus/kafka-4.4.0), on
 * two free loopback ports, its data in a temp folder. Started through startProcess, as the
 * benches start redis-server and nats-server.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { startProcess, stopProcess } from './processes.js';

export const kafkaJarsDir =
  process.env.FNBUS_KAFKA_JARS ?? join(homedir(), '.cache', 'fnbus', 'kafka-4.4.0');

export interface BenchKafka {
  /** `127.0.0.1:PORT`, for kafkajs's `brokers` and the connector's broker_hosts. */
  brokers: string;
  /** The JVM's process. */
  process: ChildProcess;
  /** A kafkajs client of this broker, its logging off. */
  client(clientId?: string): Kafka;
  /** Creates the topic and waits until every partition has a leader. */
  createTopic(name: string, partitions: number): Promise<void>;
  /** Stops the broker and removes its folder. */
  stop(): Promise<void>;
}

/** A port nothing listens on now, on loopback. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

/** Starts the broker (heap -Xmx1g); resolves once it answers metadata. */
export async function startKafka(): Promise<BenchKafka> {
  if (!existsSync(join(kafkaJarsDir, '.complete'))) {
    throw new Error(
      `no Kafka jars in ${kafkaJarsDir}: run \`bash test/kafka/kafka-jars.sh\` (needs Maven)`,
    );
  }
  const port = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === port) controllerPort = await freePort();
  const brokers = `127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), 'fnbus-bench-kafka-'));
  const properties = join(dir, 'server.properties');
  const log4j = join(dir, 'log4j2.properties');
  writeFileSync(
    properties,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://${brokers},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://${brokers}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      `log.dirs=${join(dir, 'data')}`,
      'auto.create.topics.enable=false',
      // One broker: every internal topic with one replica.
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=1',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      // A group's first member is assigned at once, not after 3 s.
      'group.initial.rebalance.delay.ms=0',
      '',
    ].join('\n'),
  );
  writeFileSync(
    log4j,
    [
      'status = warn',
      'appender.out.type = Console',
      'appender.out.name = OUT',
      'appender.out.target = SYSTEM_ERR',
      'appender.out.layout.type = PatternLayout',
      'appender.out.layout.pattern = [%d] %p %m (%c)%n',
      'rootLogger.level = ERROR',
      'rootLogger.appenderRef.out.ref = OUT',
      '',
    ].join('\n'),
  );
  const jvm = ['-Djava.awt.headless=true', `-Dlog4j2.configurationFile=${log4j}`];
  const classpath = ['-cp', join(kafkaJarsDir, '*')];
  const clusterId = randomBytes(16).toString('base64url');
  await promisify(execFile)('java', [
    ...jvm,
    ...classpath,
    'kafka.tools.StorageTool',
    'format',
    '-t',
    clusterId,
    '-c',
    properties,
  ]);
  const child = startProcess(
    'java',
    ['-Xms256m', '-Xmx1g', ...jvm, ...classpath, 'kafka.Kafka', properties],
    process.env,
  );
  const client = (clientId = 'fnbus-bench') =>
    new Kafka({ clientId, brokers: [brokers], logLevel: logLevel.NOTHING });

  const deadline = Date.now() + 60_000;
  while (!(await answersMetadata(brokers))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopProcess(child);
      throw new Error(`Kafka did not start on ${brokers} (its folder: ${dir})`);
    }
    await sleep(200);
  }

  return {
    brokers,
    process: child,
    client,
    async createTopic(name, partitions) {
      const admin = client('fnbus-bench-admin').admin();
      await admin.connect();
      try {
        // Not waitForLeaders: under KRaft it can fail with UNKNOWN_TOPIC_OR_PARTITION.
        await admin.createTopics({
          topics: [{ topic: name, numPartitions: partitions, replicationFactor: 1 }],
          waitForLeaders: false,
        });
        const until = Date.now() + 20_000;
        for (;;) {
          const { topics } = await admin.fetchTopicMetadata({ topics: [name] }).catch(() => ({
            topics: [],
          }));
          const found = topics[0]?.partitions ?? [];
          if (found.length === partitions && found.every((p) => p.leader >= 0)) return;
          if (Date.now() > until) throw new Error(`no leaders for ${name}'s partitions`);
          await sleep(100);
        }
      } finally {
        await admin.disconnect();
      }
    },
    async stop() {
      await stopProcess(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether the broker answers a metadata request listing itself: it is up, not only listening. */
async function answersMetadata(brokers: string): Promise<boolean> {
  const admin = new Kafka({
    clientId: 'fnbus-bench-ready',
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    requestTimeout: 5000,
    retry: { retries: 0 },
  }).admin();
  try {
    await admin.connect();
    return (await admin.describeCluster()).brokers.length > 0;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
