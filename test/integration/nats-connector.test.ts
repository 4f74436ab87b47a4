import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager, jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startCli, type RunningCli, stopCli } from '../helpers/cli.js';
import { connectorAuthEnv, deployProcess, startHub, stopHub } from '../helpers/hub.js';
import { startNats, type RunningServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, makeTempDir } from '../helpers/watchdog.js';

let nats: RunningServer;
let client: NatsConnection;
before(async () => {
  nats = await startNats();
  client = await connect({ servers: nats.url });
});
after(async () => {
  await client?.close();
  await nats?.stop();
});

let made = 0;
const unique = (what: string) => `${what}${process.pid}x${(made += 1)}`;

/** `fnbus connector nats` alone against `gateway`. */
function startNatsConnector(gateway: string, env: Record<string, string> = {}): RunningCli {
  return startCli(['connector', 'nats', '--gateway', gateway], {
    ...connectorAuthEnv(),
    broker_host: nats.url,
    rebuild_interval: '500ms',
    metrics_port: '0',
    print_response: 'false',
    ...env,
  });
}

/** The bodies a event-recorder.cjs function took (it records any message's body). */
function bodies(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split('|').at(-1) ?? '');
}

async function deployRecorder(url: string, name: string, topic: string, dir: string) {
  const file = join(dir, `${name}.taken`);
  await deployProcess(
    url,
    name,
    `node ${fixture('event-recorder.cjs')}`,
    { topic },
    { mode: 'http', RECORD_FILE: file, DOWN_FILE: join(dir, `${name}.down`) },
  );
  return file;
}

describe('nats connector', () => {
  it('core subjects: wildcards, a queue group shared by replicas, a request answered', async (t) => {
    const dir = makeTempDir('fnbus-nats-connector-');
    const { hub, url } = await startHub(['--connectors', 'none'], join(dir, 'state'));
    t.after(() => stopHub(hub));
    const orders = unique('orders');
    const file = await deployRecorder(url, 'orders', `${orders}.events.*`, dir);
    await deployProcess(url, 'upper', 'tr a-z A-Z', { topic: `${orders}.ask` });
    const replicas = [startNatsConnector(url), startNatsConnector(url)];
    t.after(() => Promise.all(replicas.map((replica) => stopCli(replica))));
    await waitFor(
      () => replicas.every((replica) => /nats connector subscribed/.test(replica.stdout())),
      { timeoutMs: 20_000, what: 'both replicas subscribed' },
    );
    // A request to `orders.ask`: the sync function's answer comes back on the reply subject.
    const reply = await client.request(`${orders}.ask`, 'hello', { timeout: 10_000 });
    assert.equal(reply.string(), 'HELLO');
    assert.equal(reply.headers?.get('X-Function'), 'upper.openfaas-fn');
    for (let n = 0; n < 100; n++) client.publish(`${orders}.events.new`, `message-${n}`);
    await client.flush();
    await waitFor(() => bodies(file).filter((b) => b.startsWith('message-')).length >= 100, {
      timeoutMs: 30_000,
      what: '100 messages taken',
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const taken = bodies(file).filter((b) => b.startsWith('message-'));
    // The queue group: each message to one replica, so to the function once.
    assert.equal(taken.length, 100);
    assert.equal(new Set(taken).size, 100);
  });

  it('JetStream: a durable consumer, each message acknowledged once answered, none lost to a kill -9', async (t) => {
    const dir = makeTempDir('fnbus-nats-connector-');
    const { hub, url } = await startHub(['--connectors', 'none'], join(dir, 'state'));
    t.after(() => stopHub(hub));
    const stream = unique('EVENTS');
    const jsm = await jetstreamManager(client);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    const file = await deployRecorder(url, 'events', `${stream}.created`, dir);
    const js = jetstream(client);
    const total = 2000;
    for (let n = 0; n < total; n++) await js.publish(`${stream}.created`, `event-${n}`);
    const env = { stream, consumer: 'fnbus', ack_wait: '5s', max_inflight: '16' };
    const first = startNatsConnector(url, env);
    await waitFor(() => bodies(file).length >= 300, { timeoutMs: 60_000, what: '300 taken' });
    await stopCli(first, 'SIGKILL');
    const atKill = bodies(file).length;
    const second = startNatsConnector(url, env);
    t.after(() => stopCli(second));
    await waitFor(() => new Set(bodies(file)).size === total, {
      timeoutMs: 90_000,
      intervalMs: 200,
      what: `every message taken (${atKill} before the kill)`,
    });
    t.diagnostic(
      `${bodies(file).length - total} of ${total} taken twice, ${atKill} before the kill`,
    );
    await waitFor(async () => (await jsm.consumers.info(stream, 'fnbus')).num_ack_pending === 0, {
      timeoutMs: 10_000,
      what: 'every message acknowledged',
    });
    const info = await jsm.consumers.info(stream, 'fnbus');
    assert.equal(info.num_pending, 0);
  });

  it('JetStream: a server restart under load loses no message', async (t) => {
    const dir = makeTempDir('fnbus-nats-connector-');
    const { hub, url } = await startHub(['--connectors', 'none'], join(dir, 'state'));
    t.after(() => stopHub(hub));
    const stream = unique('RESTART');
    const jsm = await jetstreamManager(client);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    const file = await deployRecorder(url, 'restarted', `${stream}.in`, dir);
    const connector = startNatsConnector(url, { stream, consumer: 'fnbus', ack_wait: '5s' });
    t.after(() => stopCli(connector));
    const publish = async (from: number, count: number) => {
      const js = jetstream(client);
      for (let n = from; n < from + count; n++) await js.publish(`${stream}.in`, `msg-${n}`);
    };
    await publish(0, 500);
    await waitFor(() => bodies(file).length >= 100, { timeoutMs: 30_000, what: '100 taken' });
    await nats.restart();
    // The test's own client reconnects by itself; publishes wait for it.
    await waitFor(
      async () =>
        await client.rtt().then(
          () => true,
          () => false,
        ),
      {
        timeoutMs: 20_000,
        what: 'the client back',
      },
    );
    await publish(500, 500);
    await waitFor(() => new Set(bodies(file)).size === 1000, {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: 'every message taken across the restart',
    });
  });

  it('core subjects: past 2 x max_inflight in hand, messages are dropped and said, not held', async (t) => {
    const dir = makeTempDir('fnbus-nats-connector-');
    const { hub, url } = await startHub(['--connectors', 'none'], join(dir, 'state'));
    t.after(() => stopHub(hub));
    const subject = unique('flood');
    await deployProcess(url, 'slow', "sh -c 'cat >/dev/null; sleep 1'", { topic: subject });
    const connector = startNatsConnector(url, { max_inflight: '2' });
    t.after(() => stopCli(connector));
    await waitFor(() => /nats connector subscribed/.test(connector.stdout()), {
      timeoutMs: 20_000,
      what: 'subscribed',
    });
    for (let n = 0; n < 200; n++) client.publish(subject, `m-${n}`);
    await client.flush();
    await waitFor(() => /core NATS messages dropped/.test(connector.stdout()), {
      timeoutMs: 10_000,
      what: `the drop said: ${connector.stdout()}`,
    });
  });
});
