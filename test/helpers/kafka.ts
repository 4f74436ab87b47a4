import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { freePort } from './http.js';
import { waitFor } from './wait.js';
import { makeTempDir } from './watchdog.js';

/** Where test/kafka/kafka-jars.sh puts Kafka's jars; the same env and default. */
export const kafkaJarsDir =
  process.env.FNBUS_KAFKA_JARS ?? join(homedir(), '.cache', 'fnbus', 'kafka-4.4.0');

/** Listeners besides the PLAINTEXT one, which is always there (and used between broker and controller). */
export interface KafkaOptions {
  /**
   * A SASL_PLAINTEXT listener taking these users (name: password) by PLAIN, SCRAM-SHA-256 and
   * SCRAM-SHA-512. Names and passwords of letters, digits and `._-` only: they are written
   * unescaped into JAAS and the storage tool's `--add-scram`.
   */
  sasl?: { users: Record<string, string> };
  /** An SSL listener whose certificate (127.0.0.1, an IP SAN) is signed by a CA of its own. */
  tls?: true;
}

/** A single-node Apache Kafka (KRaft broker and controller in one JVM) started for a test file. */
export interface RunningKafka {
  /** `127.0.0.1:PORT`, for kafkajs's `brokers`. */
  brokers: string;
  port: number;
  /** Its temp folder: server.properties, data/, kafka.log (the JVM's output). */
  dir: string;
  /** A kafkajs client of this broker, its logging off. */
  client(clientId?: string): Kafka;
  /** Creates the topic and waits until every partition has a leader. */
  createTopic(name: string, partitions?: number): Promise<void>;
  /** SIGKILL, then the same broker again on the same ports and data. */
  restart(): Promise<void>;
  /** SIGTERM; SIGKILL if it has not exited after 20 s. */
  stop(): Promise<void>;
}

/** What `options.sasl` adds. */
export interface SaslKafka {
  /** `127.0.0.1:PORT` of the SASL_PLAINTEXT listener. */
  saslBrokers: string;
}

/** What `options.tls` adds. */
export interface TlsKafka {
  /** `127.0.0.1:PORT` of the SSL listener. */
  tlsBrokers: string;
  /** The PEM of the CA that signed the listener's certificate (trusted by nothing else). */
  caFile: string;
}

/** The broker `startKafka(options)` resolves to: the listeners' fields of the options asked. */
export type KafkaWith<O extends KafkaOptions> = RunningKafka &
  (O extends { sasl: object } ? SaslKafka : unknown) &
  (O extends { tls: true } ? TlsKafka : unknown);

const startTimeoutMs = 60_000;
const stopTimeoutMs = 20_000;

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Apache Kafka 4.4.0 from the jars test/kafka/kafka-jars.sh fetched, on two free loopback ports
 * (clients, controller) and one more per listener of `options`, its data in a temp folder;
 * resolves once the broker answers metadata. Takes a few seconds (a JVM); start one per test
 * file, not per test.
 */
export async function startKafka<O extends KafkaOptions = Record<never, never>>(
  options?: O,
): Promise<KafkaWith<O>> {
  if (!existsSync(join(kafkaJarsDir, '.complete'))) {
    throw new Error(
      `no Kafka jars in ${kafkaJarsDir}: run \`bash test/kafka/kafka-jars.sh\` (needs Maven)`,
    );
  }
  const users = Object.entries(options?.sasl?.users ?? {});
  for (const [name, password] of users) {
    if (!/^[\w.-]+$/.test(name) || !/^[\w.-]+$/.test(password)) {
      throw new Error(`SASL user ${JSON.stringify(name)}: letters, digits and ._- only`);
    }
  }
  const ports: number[] = [];
  const newPort = async () => {
    let next = await freePort();
    while (ports.includes(next)) next = await freePort();
    ports.push(next);
    return next;
  };
  const port = await newPort();
  const controllerPort = await newPort();
  const saslPort = options?.sasl ? await newPort() : undefined;
  const tlsPort = options?.tls ? await newPort() : undefined;
  const dir = makeTempDir('fnbus-kafka-');
  const brokers = `127.0.0.1:${port}`;
  const properties = join(dir, 'server.properties');
  const log4j = join(dir, 'log4j2.properties');
  const logFile = join(dir, 'kafka.log');
  const listeners = [`PLAINTEXT://${brokers}`];
  const protocols = ['CONTROLLER:PLAINTEXT', 'PLAINTEXT:PLAINTEXT'];
  const security: string[] = [];
  if (saslPort !== undefined) {
    listeners.push(`SASL_PLAINTEXT://127.0.0.1:${saslPort}`);
    protocols.push('SASL_PLAINTEXT:SASL_PLAINTEXT');
    const prefix = 'listener.name.sasl_plaintext';
    const plainUsers = users.map(([name, password]) => `user_${name}="${password}"`).join(' ');
    security.push(
      'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
      `${prefix}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required ${plainUsers};`,
      `${prefix}.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
      `${prefix}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
    );
  }
  let caFile: string | undefined;
  if (tlsPort !== undefined) {
    listeners.push(`SSL://127.0.0.1:${tlsPort}`);
    protocols.push('SSL:SSL');
    const { ca, keystore } = makeCertificates(join(dir, 'tls'));
    caFile = ca;
    // A PEM keystore of an unencrypted PKCS#8 key and its certificate: no ssl.key.password.
    security.push(
      'listener.name.ssl.ssl.keystore.type=PEM',
      `listener.name.ssl.ssl.keystore.location=${keystore}`,
      'listener.name.ssl.ssl.client.auth=none',
    );
  }
  writeFileSync(
    properties,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=${[...listeners, `CONTROLLER://127.0.0.1:${controllerPort}`].join(',')}`,
      `advertised.listeners=${listeners.join(',')}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      `listener.security.protocol.map=${protocols.join(',')}`,
      ...security,
      `log.dirs=${join(dir, 'data')}`,
      // Tests create their topics, with the partitions they mean: a typo must not make one.
      'auto.create.topics.enable=false',
      'num.partitions=1',
      // One broker: every internal topic with one replica, or they never come up.
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=1',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      // A group's first member is assigned at once, not after 3 s.
      'group.initial.rebalance.delay.ms=0',
      // After a kill -9 the controller refuses the broker's new registration until the old one's
      // session expires: 3 s instead of 9 s of every restart.
      'broker.session.timeout.ms=3000',
      'broker.heartbeat.interval.ms=500',
      '',
    ].join('\n'),
  );
  writeFileSync(
    log4j,
    [
      'status = warn',
      'appender.out.type = Console',
      'appender.out.name = OUT',
      'appender.out.layout.type = PatternLayout',
      'appender.out.layout.pattern = [%d] %p %m (%c)%n',
      'rootLogger.level = WARN',
      'rootLogger.appenderRef.out.ref = OUT',
      '',
    ].join('\n'),
  );
  const jvmOptions = [
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${log4j}`,
    '-cp',
    join(kafkaJarsDir, '*'),
  ];

  try {
    // A random cluster id, in the base64url UUID form Kafka wants; formatted once, kept on restart.
    // SCRAM credentials live in the cluster's metadata: written at format time, before any
    // listener takes a login.
    const scram = users.flatMap(([name, password]) =>
      ['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap((mechanism) => [
        '--add-scram',
        `${mechanism}=[name=${name},password=${password}]`,
      ]),
    );
    await promisify(execFile)('java', [
      ...jvmOptions,
      'kafka.tools.StorageTool',
      'format',
      '-t',
      randomBytes(16).toString('base64url'),
      '-c',
      properties,
      ...scram,
    ]);
  } catch (error) {
    throw new Error(`formatting Kafka's storage in ${dir} failed (is Java 17+ installed?)`, {
      cause: error,
    });
  }

  const client = (clientId = 'fnbus-test') =>
    new Kafka({ clientId, brokers: [brokers], logLevel: logLevel.NOTHING });

  let child: ChildProcess | undefined;
  const exited = (jvm: ChildProcess) => jvm.exitCode !== null || jvm.signalCode !== null;
  const kill = async (signal: NodeJS.Signals, timeoutMs?: number) => {
    const current = child;
    // No pid: it never started (spawn's 'error'), and there is no 'exit' to wait for.
    if (current?.pid === undefined || exited(current)) return;
    const exit = once(current, 'exit');
    current.kill(signal);
    if (timeoutMs === undefined) {
      await exit;
      return;
    }
    const timer = setTimeout(() => current.kill('SIGKILL'), timeoutMs);
    try {
      await exit;
    } finally {
      clearTimeout(timer);
    }
  };
  const logTail = () => {
    try {
      return readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
    } catch {
      return '(no log)';
    }
  };

  const launch = async () => {
    const out = openSync(logFile, 'a');
    let spawnError: Error | undefined;
    const current = spawn(
      'java',
      ['-Xms256m', '-Xmx1g', ...jvmOptions, 'kafka.Kafka', properties],
      { cwd: dir, stdio: ['ignore', out, out] },
    );
    closeSync(out);
    child = current;
    running.add(current);
    current.once('error', (error) => (spawnError = error));
    current.once('exit', () => running.delete(current));
    try {
      const state = await waitFor(
        async () => {
          if (spawnError !== undefined || exited(current)) return 'exited';
          return (await answersMetadata(brokers)) && 'ready';
        },
        { timeoutMs: startTimeoutMs, intervalMs: 200, what: `Kafka on ${brokers}` },
      );
      if (state === 'exited') {
        throw (
          spawnError ?? new Error(`the broker exited (${current.exitCode ?? current.signalCode})`)
        );
      }
    } catch (error) {
      await kill('SIGKILL');
      throw new Error(`Kafka did not start on ${brokers}; the end of ${logFile}:\n${logTail()}`, {
        cause: error,
      });
    }
  };

  await launch();
  const kafka: RunningKafka & Partial<SaslKafka & TlsKafka> = {
    brokers,
    port,
    dir,
    ...(saslPort !== undefined ? { saslBrokers: `127.0.0.1:${saslPort}` } : {}),
    ...(tlsPort !== undefined && caFile !== undefined
      ? { tlsBrokers: `127.0.0.1:${tlsPort}`, caFile }
      : {}),
    client,
    async createTopic(name, partitions = 1) {
      const admin = client('fnbus-test-admin').admin();
      await admin.connect();
      try {
        // waitForLeaders is not trusted: under KRaft it can fail with UNKNOWN_TOPIC_OR_PARTITION.
        const created = await admin.createTopics({
          topics: [{ topic: name, numPartitions: partitions, replicationFactor: 1 }],
          waitForLeaders: false,
        });
        if (!created) throw new Error(`topic ${name} already exists`);
        await waitFor(
          async () => {
            const { topics } = await admin.fetchTopicMetadata({ topics: [name] });
            const found = topics[0]?.partitions ?? [];
            return found.length === partitions && found.every((p) => p.leader >= 0);
          },
          {
            timeoutMs: 20_000,
            intervalMs: 100,
            what: `leaders of ${name}'s ${partitions} partitions`,
          },
        );
      } finally {
        await admin.disconnect();
      }
    },
    async restart() {
      await kill('SIGKILL');
      await launch();
    },
    stop: () => kill('SIGTERM', stopTimeoutMs),
  };
  return kafka as KafkaWith<O>;
}

/**
 * A CA and a certificate for 127.0.0.1 it signs, in `dir`: `ca` (the CA's PEM, for clients) and
 * `keystore` (the server's unencrypted PKCS#8 key, then its certificate, for Kafka's PEM keystore).
 */
function makeCertificates(dir: string): { ca: string; keystore: string } {
  mkdirSync(dir, { recursive: true });
  const openssl = (...args: string[]) => {
    try {
      execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    } catch (error) {
      throw new Error(`openssl ${args[0]} failed (is openssl installed?)`, { cause: error });
    }
  };
  // EC keys: made at once, where RSA ones take a while on a busy CPU.
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=fnbus-test-kafka-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  );
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(
    join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'server.ext',
  );
  const keystore = join(dir, 'keystore.pem');
  writeFileSync(
    keystore,
    readFileSync(join(dir, 'server.key'), 'utf8') + readFileSync(join(dir, 'server.pem'), 'utf8'),
  );
  return { ca: join(dir, 'ca.pem'), keystore };
}

/** Whether the broker answers a metadata request listing itself: it is up, not only listening. */
async function answersMetadata(brokers: string): Promise<boolean> {
  const admin = new Kafka({
    clientId: 'fnbus-test-ready',
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    requestTimeout: 5000,
    retry: { retries: 0 },
  }).admin();
  try {
    await admin.connect();
    const { brokers: nodes } = await admin.describeCluster();
    return nodes.length > 0;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
