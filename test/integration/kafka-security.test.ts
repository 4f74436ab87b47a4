import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel, type KafkaConfig } from 'kafkajs';
import { startCli, type RunningCli, stopCli } from '../helpers/cli.js';
import {
  connectorAuthEnv,
  deployProcess,
  startHub,
  stopHub,
  type RunningHub,
} from '../helpers/hub.js';
import { startKafka, type KafkaWith } from '../helpers/kafka.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, makeTempDir } from '../helpers/watchdog.js';

// Random, so that finding one in the connector's output can only mean it was printed.
const user = 'fnbus-tester';
const password = `pw-${randomBytes(8).toString('hex')}`;
const wrongPassword = `wrong-${randomBytes(8).toString('hex')}`;

type SecureKafka = KafkaWith<{ sasl: { users: Record<string, string> }; tls: true }>;
let kafka: SecureKafka;
let hub: RunningHub;
let url: string;
const dir = makeTempDir('fnbus-kafka-security-');

before(async () => {
  [kafka, hub] = await Promise.all([
    startKafka({ sasl: { users: { [user]: password } }, tls: true }),
    startHub(['--connectors', 'none'], join(dir, 'state')),
  ]);
  url = hub.url;
});
after(() => Promise.all([kafka?.stop(), hub && stopHub(hub.hub)]));

let made = 0;
const unique = (what: string) => `${what}-${process.pid}-${(made += 1)}`;

type Mechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

/** A connection to the broker, kafkajs's options and the connector's env alike. */
interface Access {
  client: Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl'>;
  env: Record<string, string>;
}

function saslAccess(mechanism: Mechanism, secret = password): Access {
  const files = makeTempDir('fnbus-kafka-credentials-');
  // With a final newline, as `echo` and most secret stores write them.
  writeFileSync(join(files, 'username'), `${user}\n`);
  writeFileSync(join(files, 'password'), `${secret}\n`);
  return {
    client: {
      brokers: [kafka.saslBrokers],
      // kafkajs's types want the literal mechanism, each with its own option shape.
      sasl: { mechanism, username: user, password: secret } as KafkaConfig['sasl'],
    },
    env: {
      broker_hosts: kafka.saslBrokers,
      sasl_mechanism: mechanism,
      username_file: join(files, 'username'),
      password_file: join(files, 'password'),
    },
  };
}

function tlsAccess(): Access {
  return {
    client: { brokers: [kafka.tlsBrokers], ssl: { ca: readFileSync(kafka.caFile, 'utf8') } },
    // ca_file alone: any of the files turns TLS on.
    env: { broker_hosts: kafka.tlsBrokers, ca_file: kafka.caFile },
  };
}

/** A topic, the recorder (fixtures/event-recorder.cjs) on it, and the file of what it took. */
async function recorder(name: string): Promise<{ topic: string; file: string }> {
  const topic = unique(name);
  await kafka.createTopic(topic, 2);
  const file = join(dir, `${name}.taken`);
  await deployProcess(
    url,
    name,
    `node ${fixture('event-recorder.cjs')}`,
    { topic },
    { mode: 'http', RECORD_FILE: file },
  );
  return { topic, file };
}

const takenBodies = (file: string): string[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split('|')[3] ?? '')
    : [];

async function produce(access: Access, topic: string, bodies: string[]): Promise<void> {
  const producer = new Kafka({
    clientId: 'fnbus-test-secure-producer',
    logLevel: logLevel.NOTHING,
    ...access.client,
  }).producer();
  await producer.connect();
  try {
    await producer.send({ topic, messages: bodies.map((value) => ({ value })) });
  } finally {
    await producer.disconnect();
  }
}

/** `fnbus connector kafka` alone against the hub, reaching the broker by `env`. */
function startConnector(env: Record<string, string>, topic: string): RunningCli {
  return startCli(['connector', 'kafka', '--gateway', url], {
    ...connectorAuthEnv(),
    group: unique('group'),
    topics: topic,
    rebuild_interval: '500ms',
    metrics_port: '0',
    print_response: 'false',
    ...env,
  });
}

const output = (connector: RunningCli) => connector.stdout() + connector.stderr();

/** Records through a connector reaching the broker by `access`, a producer likewise. */
async function delivers(name: string, access: Access): Promise<void> {
  const { topic, file } = await recorder(name);
  const bodies = Array.from({ length: 5 }, (_, n) => `${name}-${n}`);
  await produce(access, topic, bodies);
  const connector = startConnector(access.env, topic);
  try {
    await waitFor(() => bodies.every((body) => takenBodies(file).includes(body)), {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: `the records of ${name} taken`,
    });
  } catch (error) {
    throw new Error(`${String(error)}; the connector's output:\n${output(connector)}`);
  } finally {
    await stopCli(connector);
  }
  assert.ok(!output(connector).includes(password), 'the password is in the output');
}

/**
 * A connector reaching the broker by `env`, which the broker refuses: its output matches
 * `refusal` (then a few more seconds of retries), and the records produced by `producer` are
 * never delivered. Resolves to its whole output.
 */
async function refused(
  name: string,
  env: Record<string, string>,
  producer: Access,
  refusal: RegExp,
): Promise<string> {
  const { topic, file } = await recorder(name);
  await produce(producer, topic, [`${name}-0`, `${name}-1`]);
  const connector = startConnector(env, topic);
  try {
    await waitFor(() => refusal.test(output(connector)), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: `${name}: a refusal in the connector's output`,
    }).catch((error: unknown) => {
      throw new Error(`${String(error)}:\n${output(connector)}`);
    });
    // Long enough for retries, which must be refused too.
    await sleep(2000);
    assert.deepEqual(takenBodies(file), [], `${name}: records delivered`);
  } finally {
    await stopCli(connector);
  }
  return output(connector);
}

describe('kafka connector security, against Apache Kafka', () => {
  for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
    it(`SASL ${mechanism}: records delivered`, () =>
      delivers(`sasl-${mechanism}`, saslAccess(mechanism)));
  }

  it('TLS with ca_file: records delivered', () => delivers('tls', tlsAccess()));

  it('a wrong password: an authentication failure logged, nothing delivered, the password never printed', async () => {
    const outputs = await Promise.all(
      (['plain', 'scram-sha-512'] as const).map((mechanism) =>
        refused(
          `wrong-${mechanism}`,
          saslAccess(mechanism, wrongPassword).env,
          saslAccess(mechanism),
          /SASL [\w ]+ authentication failed/,
        ),
      ),
    );
    for (const text of outputs) {
      // Refused credentials stay refused: the connector stops, naming the setting.
      assert.match(text, /sasl_mechanism: the brokers refused the credentials/);
      assert.ok(!text.includes(wrongPassword), `the wrong password is in the output:\n${text}`);
      assert.ok(!text.includes(password), 'the password is in the output');
    }
  });

  it('TLS without ca_file: the broker of a CA of its own is not trusted, nothing delivered', async () => {
    await refused(
      'tls-untrusted',
      { broker_hosts: kafka.tlsBrokers, tls: 'true' },
      tlsAccess(),
      /unable to verify the first certificate|self[- ]signed certificate/,
    );
  });
});
