import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectAsync, type MqttClient } from 'mqtt';
import { mqttKind } from '../../connectors/mqtt/mqtt-kind.js';
import { MqttSource } from '../../connectors/mqtt/mqtt-source.js';
import { TopicMap } from '../../connectors/sdk/topic-map.js';
import { mqttTopics } from '../../connectors/sdk/topic-matchers.js';
import type { SourceEvent } from '../../core/source.js';
import { runCli, startCli, type RunningCli, stopCli } from '../helpers/cli.js';
import {
  connectorAuthEnv,
  deployProcess,
  ready,
  startHub,
  stopHub,
  systemAuth,
  type RunningHub,
} from '../helpers/hub.js';
import { request } from '../helpers/http.js';
import { startMosquitto, type RunningMosquitto } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, makeTempDir } from '../helpers/watchdog.js';

const credentials = { user: 'fnbus', password: 'mqtt-test-password' };
let broker: RunningMosquitto;
let hub: RunningHub;
let publisher: MqttClient;
const dir = makeTempDir('fnbus-mqtt-connector-');

before(async () => {
  [broker, hub] = await Promise.all([
    startMosquitto({ credentials, tls: true }),
    startHub(['--connectors', 'none'], join(dir, 'state')),
  ]);
  publisher = await connectAsync(broker.url, { protocolVersion: 5 });
});
after(async () => {
  await publisher?.endAsync();
  await stopHub(hub.hub);
  await broker.stop();
});

/**
 * A forked function that appends `topic|qos|retain|dup|content type|connector|body` per call to
 * `file`, then works `seconds`, and answers `answer:<body>`.
 */
function recorder(file: string, seconds = 0): string {
  const line =
    '$Http_X_Topic|$Http_X_Mqtt_Qos|$Http_X_Mqtt_Retain|$Http_X_Mqtt_Dup|$Http_Content_Type|$Http_X_Connector|$body';
  return `sh -c 'body=$(cat); echo "${line}" >> ${file}; sleep ${seconds}; echo "answer:$body"'`;
}

interface Call {
  topic: string;
  qos: string;
  retain: string;
  dup: string;
  contentType: string;
  connector: string;
  body: string;
}

function calls(file: string): Call[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [
        topic = '',
        qos = '',
        retain = '',
        dup = '',
        contentType = '',
        connector = '',
        body = '',
      ] = line.split('|');
      return { topic, qos, retain, dup, contentType, connector, body };
    });
}

async function deploy(name: string, fprocess: string, topic: string): Promise<void> {
  await deployProcess(hub.url, name, fprocess, { topic });
  await ready(hub.url, name);
}

/** `fnbus connector mqtt` alone against the hub, with the settings in `env`. */
function startConnector(env: Record<string, string>): RunningCli {
  return startCli(['connector', 'mqtt', '--gateway', hub.url], {
    ...connectorAuthEnv(),
    broker: broker.url,
    rebuild_interval: '300ms',
    metrics_port: '0',
    print_response: 'false',
    ...env,
  });
}

/** Until the connector has subscribed to `filter`. */
const subscribed = (connector: RunningCli, filter: string, times = 1) =>
  waitFor(
    () =>
      connector
        .stdout()
        .split('\n')
        .filter((line) => line.includes('"mqtt subscribed"') && line.includes(`"${filter}"`))
        .length >= times,
    { timeoutMs: 15_000, what: `a subscription to ${filter}: ${connector.stdout()}` },
  );

const publish = (topic: string, body: string, options: Parameters<MqttClient['publishAsync']>[2]) =>
  publisher.publishAsync(topic, body, options);

describe('mqtt connector against mosquitto', () => {
  it('takes its subscriptions from the functions, wildcards included, with the message headers; a reply goes to the response topic', async (t) => {
    const file = join(dir, 'mapped');
    await deploy('orders', recorder(file), 'm1/orders');
    await deploy('temps', recorder(file), 'm1/sensors/+/temp');
    await deploy('everything', recorder(file), 'm1/sensors/#');
    const connector = startConnector({ client_id: 'fnbus-m1' });
    t.after(() => stopCli(connector));
    await subscribed(connector, 'm1/sensors/+/temp');
    await subscribed(connector, 'm1/sensors/#');
    await subscribed(connector, 'm1/orders');

    const replies: { body: string; correlation?: string; fn?: unknown }[] = [];
    await publisher.subscribeAsync('m1/replies', { qos: 1 });
    publisher.on('message', (topic, payload, packet) => {
      if (topic !== 'm1/replies') return;
      replies.push({
        body: payload.toString(),
        correlation: packet.properties?.correlationData?.toString(),
        fn: packet.properties?.userProperties?.function,
      });
    });
    await publish('m1/orders', '{"order":1}', {
      qos: 1,
      properties: {
        contentType: 'application/vnd.order+json',
        responseTopic: 'm1/replies',
        correlationData: Buffer.from('corr-1'),
      },
    });
    await publish('m1/sensors/kitchen/temp', '21.5', { qos: 1 });
    await publish('m1/sensors/kitchen/humidity', '40', { qos: 0 });
    await waitFor(() => calls(file).length >= 4, { what: `4 calls: ${readText(file)}` });

    const seen = calls(file)
      .map((c) => `${c.topic} ${c.body} qos=${c.qos} retain=${c.retain} ${c.contentType}`)
      .sort();
    assert.deepEqual(seen, [
      'm1/orders {"order":1} qos=1 retain=false application/vnd.order+json',
      // `m1/sensors/+/temp` and `m1/sensors/#` both take it: each function once, though the
      // broker sends a copy per subscription.
      'm1/sensors/kitchen/humidity 40 qos=0 retain=false application/json',
      'm1/sensors/kitchen/temp 21.5 qos=1 retain=false application/json',
      'm1/sensors/kitchen/temp 21.5 qos=1 retain=false application/json',
    ]);
    for (const call of calls(file)) assert.equal(call.connector, 'mqtt-connector');
    await waitFor(() => replies.length >= 1, { what: 'the reply' });
    assert.deepEqual(replies, [
      { body: 'answer:{"order":1}\n', correlation: 'corr-1', fn: 'orders.openfaas-fn' },
    ]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(calls(file).length, 4, 'no duplicate from the overlapping subscriptions');
  });

  it('passes MQTT 5 user properties on as X-Mqtt-<name>, and a topic past Latin-1 as its UTF-8', async (t) => {
    const file = join(dir, 'properties');
    const line = '$Http_X_Topic|$Http_X_Mqtt_Trace|$Http_X_Mqtt_City|$(cat)';
    await deploy('kitchen', `sh -c 'echo "${line}" >> ${file}'`, 'm10/+');
    const connector = startConnector({ client_id: 'fnbus-m10' });
    t.after(() => stopCli(connector));
    await subscribed(connector, 'm10/+');
    await publish('m10/厨房', 'hot', {
      qos: 1,
      properties: { userProperties: { trace: 'abc', city: ['Paris', 'Zürich 厨房'] } },
    });
    await waitFor(() => readText(file).includes('hot'), {
      what: `the message: ${connector.stdout()}`,
    });
    // A property sent twice: the last, as with Kafka's headers.
    assert.equal(readText(file), 'm10/厨房|abc|Zürich 厨房|hot\n');
  });

  it('subscribes to a function deployed later, and unsubscribes once no function takes it', async (t) => {
    const file = join(dir, 'later');
    await deploy('first', recorder(file), 'm2/first');
    const connector = startConnector({ client_id: 'fnbus-m2' });
    t.after(() => stopCli(connector));
    await subscribed(connector, 'm2/first');

    await deploy('later', recorder(file), 'm2/later/#');
    await subscribed(connector, 'm2/later/#');
    await publish('m2/later/x', 'late', { qos: 1 });
    await waitFor(() => calls(file).some((c) => c.body === 'late'), { what: 'the later call' });

    const removed = await request(`${hub.url}/system/functions`, {
      method: 'DELETE',
      headers: { 'Content-Type': 'application/json', ...systemAuth },
      body: JSON.stringify({ functionName: 'later' }),
    });
    assert.equal(removed.status, 202, removed.text);
    await waitFor(() => connector.stdout().includes('"mqtt unsubscribed: no function takes it"'), {
      timeoutMs: 10_000,
      what: 'the unsubscription',
    });
  });

  it('keeps its session: QoS 1 messages published while it was stopped arrive when it is back (MQTT 5 and 3.1.1)', async (t) => {
    for (const version of ['5', '3.1.1']) {
      const file = join(dir, `session-${version}`);
      const name = `session-${version.replaceAll('.', '')}`;
      const topic = `m3/${name}`;
      await deploy(name, recorder(file), topic);
      const env = { client_id: `fnbus-m3-${name}`, FNBUS_MQTT_VERSION: version };
      const first = startConnector(env);
      t.after(() => stopCli(first));
      await subscribed(first, topic);
      await stopCli(first, 'SIGKILL');

      for (const n of [1, 2, 3]) await publish(topic, `away-${n}`, { qos: 1 });
      const second = startConnector(env);
      t.after(() => stopCli(second));
      await waitFor(() => calls(file).length >= 3, {
        timeoutMs: 10_000,
        what: `the messages kept for ${version}: ${second.stdout()}`,
      });
      assert.deepEqual(
        calls(file).map((c) => c.body),
        ['away-1', 'away-2', 'away-3'],
      );
      await stopCli(second);
    }
  });

  it('delivers again a message whose function had not answered when the connector was killed', async (t) => {
    const file = join(dir, 'killed');
    await deploy('slow', recorder(file, 2), 'm4/slow');
    const env = { client_id: 'fnbus-m4' };
    const first = startConnector(env);
    t.after(() => stopCli(first, 'SIGKILL'));
    await subscribed(first, 'm4/slow');
    await publish('m4/slow', 'once', { qos: 1 });
    await waitFor(() => calls(file).length === 1, { what: 'the call to start' });
    await stopCli(first, 'SIGKILL');

    const second = startConnector({ ...env, print_response: 'true' });
    t.after(() => stopCli(second, 'SIGKILL'));
    await waitFor(() => calls(file).length === 2, {
      timeoutMs: 10_000,
      what: `the message again: ${second.stdout()}`,
    });
    assert.deepEqual(
      calls(file).map((c) => `${c.body} dup=${c.dup}`),
      ['once dup=false', 'once dup=true'],
    );
    // Answered this time: acknowledged, so not sent a third time after another kill.
    await waitFor(() => second.stdout().includes('"delivered"'), {
      timeoutMs: 10_000,
      what: 'the second delivery to be answered',
    });
    // The PUBACK is written right after the answer is logged: let it reach the broker.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await stopCli(second, 'SIGKILL');
    const third = startConnector(env);
    t.after(() => stopCli(third));
    await subscribed(third, 'm4/slow');
    await publish('m4/slow', 'marker', { qos: 1 });
    await waitFor(() => calls(file).some((c) => c.body === 'marker'), { what: 'the marker' });
    assert.deepEqual(
      calls(file).map((c) => c.body),
      ['once', 'once', 'marker'],
    );
  });

  it('delivers each of 2,000 QoS 1 messages at least once through a kill -9 of the connector mid-stream', async (t) => {
    const file = join(dir, 'stream.taken');
    const topic = 'm11/stream';
    await deployProcess(
      hub.url,
      'stream',
      `node ${fixture('event-recorder.cjs')}`,
      { topic },
      {
        mode: 'http',
        RECORD_FILE: file,
      },
    );
    await ready(hub.url, 'stream');
    const taken = () =>
      readText(file)
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split('|').at(-1));
    const env = { client_id: 'fnbus-m11', max_inflight: '16' };
    const first = startConnector(env);
    t.after(() => stopCli(first, 'SIGKILL'));
    await subscribed(first, topic);
    const total = 2000;
    const sending = (async () => {
      for (let n = 0; n < total; n += 100) {
        const batch = [];
        for (let m = n; m < n + 100; m++) batch.push(publish(topic, `m-${m}`, { qos: 1 }));
        await Promise.all(batch);
      }
    })();
    await waitFor(() => taken().length >= 300, { timeoutMs: 30_000, what: '300 taken' });
    await stopCli(first, 'SIGKILL');
    const atKill = taken().length;
    const second = startConnector(env);
    t.after(() => stopCli(second));
    await sending;
    await waitFor(() => new Set(taken()).size === total, {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: `every message taken (${atKill} before the kill): ${new Set(taken()).size}`,
    });
    t.diagnostic(`${taken().length - total} of ${total} taken twice, ${atKill} before the kill`);
  });

  it('loses no QoS 1 message across a broker restart under load', async (t) => {
    const file = join(dir, 'restarted');
    const topic = 'm9/restarted';
    await deploy('restarted', recorder(file), topic);
    const connector = startConnector({ client_id: 'fnbus-m9', max_inflight: '16' });
    t.after(() => stopCli(connector));
    await subscribed(connector, topic);
    // A publisher of its own, with a session: what it sent unacknowledged goes again on reconnect.
    const sender = await connectAsync(broker.url, {
      clientId: 'fnbus-m9-publisher',
      clean: false,
      reconnectPeriod: 200,
    });
    t.after(() => sender.endAsync());
    const send = async (from: number, count: number) => {
      for (let n = from; n < from + count; n += 50) {
        const last = Math.min(from + count, n + 50);
        const batch = [];
        for (let m = n; m < last; m++) batch.push(sender.publishAsync(topic, `m-${m}`, { qos: 1 }));
        await Promise.all(batch);
      }
    };
    await send(0, 300);
    await waitFor(() => calls(file).length >= 100, { timeoutMs: 30_000, what: '100 taken' });
    // Stopped as an operator would (it saves the sessions and their queued messages), mid-stream.
    const sending = send(300, 300);
    await broker.restart('SIGTERM');
    await sending;
    await waitFor(() => new Set(calls(file).map((c) => c.body)).size === 600, {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: `every message taken across the restart: ${new Set(calls(file).map((c) => c.body)).size}`,
    });
  });

  it('splits a shared subscription between replicas', async (t) => {
    const file = join(dir, 'shared');
    await deploy('shared', recorder(file), 'm5/work');
    const replicas = ['a', 'b'].map((replica) =>
      startConnector({
        client_id: `fnbus-m5-${replica}`,
        topics: '$share/workers/m5/work',
        print_response: 'true',
      }),
    );
    t.after(() => Promise.all(replicas.map((replica) => stopCli(replica))));
    for (const replica of replicas) await subscribed(replica, '$share/workers/m5/work');
    for (let n = 0; n < 10; n++) await publish('m5/work', `job-${n}`, { qos: 1 });
    await waitFor(() => calls(file).length >= 10, { what: '10 jobs' });
    const jobs = calls(file).map((c) => c.body);
    assert.equal(new Set(jobs).size, 10, `each job once: ${jobs.join(', ')}`);
    // mosquitto hands a group's messages round robin: each replica gets some.
    for (const replica of replicas) assert.match(replica.stdout(), /"delivered"/);
  });

  it('logs in with credentials, and says which setting is wrong when the broker refuses them', async (t) => {
    const file = join(dir, 'auth');
    await deploy('auth', recorder(file), 'm6/auth');
    const good = startConnector({
      client_id: 'fnbus-m6',
      broker: broker.authUrl ?? '',
      username: credentials.user,
      password: credentials.password,
    });
    t.after(() => stopCli(good));
    await subscribed(good, 'm6/auth');

    const bad = startConnector({
      client_id: 'fnbus-m6-bad',
      broker: broker.authUrl ?? '',
      username: credentials.user,
      password: 'wrong',
    });
    const run = await bad.done;
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(
      run.stdout + run.stderr,
      /username, password: (the broker refused them|not authorized)/,
    );
  });

  it('speaks TLS, with a client certificate', async (t) => {
    const file = join(dir, 'tls');
    await deploy('secure', recorder(file), 'm7/secure');
    const files = broker.tlsFiles;
    assert.ok(broker.tlsUrl && files);
    const connector = startConnector({
      client_id: 'fnbus-m7',
      broker: broker.tlsUrl,
      ca_file: files.ca,
      cert_file: files.cert,
      key_file: files.key,
    });
    t.after(() => stopCli(connector));
    await subscribed(connector, 'm7/secure');
    await publish('m7/secure', 'sealed', { qos: 1 });
    await waitFor(() => calls(file).some((c) => c.body === 'sealed'), { what: 'the call' });
  });

  it('runs inside fnbus up', async (t) => {
    const file = join(dir, 'embedded');
    const embedded = await startHub(['--connectors', 'mqtt'], join(dir, 'embedded-state'), {
      broker: broker.url,
      client_id: 'fnbus-m9',
      rebuild_interval: '300ms',
    });
    t.after(() => stopHub(embedded.hub));
    await deployProcess(embedded.url, 'inside', recorder(file), { topic: 'm9/+' });
    await ready(embedded.url, 'inside');
    await waitFor(
      async () => {
        await publish('m9/in', 'inside', { qos: 1 });
        return calls(file).length > 0;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: `a call: ${embedded.output()}` },
    );
    assert.equal(calls(file)[0]?.topic, 'm9/in');
    const metrics = (await request(`${embedded.url}/metrics`, { headers: systemAuth })).text;
    assert.match(metrics, /^fnbus_mqtt_messages_received_total\{qos="1"\} [1-9]/m);
  });

  it('refuses bad settings at once, naming each variable', async () => {
    const run = await runCli(['connector', 'mqtt', '--gateway', hub.url], {
      broker: 'http://127.0.0.1:1883',
      topics: 'ok/+,bad/#/x,$share//x',
      qos: '3',
      clean: 'maybe',
      FNBUS_MQTT_VERSION: '4.5',
      FNBUS_MQTT_ORDER: 'random',
      ca_file: '/nonexistent/ca.pem',
    });
    assert.equal(run.code, 1);
    const output = run.stdout + run.stderr;
    for (const wanted of [
      /broker: "http:\/\/127\.0\.0\.1:1883\/" is not a broker URL/,
      /topics: "bad\/#\/x" has # before its last level/,
      /topics: "\$share\/\/x" names no share group/,
      /qos: "3" is not a whole number between 0 and 2/,
      /clean: "maybe" is not a boolean/,
      /FNBUS_MQTT_VERSION: "4\.5" is not 5 or 3\.1\.1/,
      /FNBUS_MQTT_ORDER: "random" is not one of topic, none/,
      /ca_file: the file cannot be read/,
    ]) {
      assert.match(output, wanted);
    }
  });
});

function readText(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

describe('mqtt source: its acknowledgements', () => {
  /** The source alone against the broker, its `emit` recording `body dup=…` per event. */
  function runSource(clientId: string, emit: (event: SourceEvent) => Promise<void>) {
    const { mqtt } = mqttKind.readConfig({ broker: broker.url, client_id: clientId, qos: '2' });
    const map = TopicMap.fromFunctions(
      [{ name: 'fn', namespace: '', annotations: { topic: 'm8/#' } }],
      { matcher: mqttTopics },
    );
    const source = new MqttSource({ settings: mqtt, topicMap: () => map, followEveryMs: 100 });
    const stop = new AbortController();
    const done = source.start(async (event) => {
      await emit(event);
      return [];
    }, stop.signal);
    return { stop: () => (stop.abort(), done) };
  }

  it('does not acknowledge a message whose delivery failed: it comes again on a new connection (QoS 2)', async (t) => {
    const seen: string[] = [];
    let failures = 1;
    const record = (event: SourceEvent) => {
      const body = Buffer.from(event.body).toString();
      seen.push(`${body} dup=${event.headers['X-Mqtt-Dup']} qos=${event.headers['X-Mqtt-Qos']}`);
      if (body === 'fail' && failures-- > 0) return Promise.reject(new Error('not now'));
      return Promise.resolve();
    };
    const first = runSource('fnbus-m8', record);
    t.after(() => first.stop());
    await waitFor(
      async () => {
        await publish('m8/ready', 'ready', { qos: 1 });
        return seen.some((line) => line.startsWith('ready'));
      },
      { what: 'the subscription' },
    );
    await publish('m8/x', 'before', { qos: 2 });
    await publish('m8/x', 'fail', { qos: 2 });
    await publish('m8/x', 'after', { qos: 2 });
    await waitFor(() => seen.filter((line) => line.startsWith('after')).length >= 1, {
      what: `the message after: ${seen.join(', ')}`,
    });
    await waitFor(() => seen.some((line) => line === 'fail dup=true qos=2'), {
      what: `the failed message again: ${seen.join(', ')}`,
    });
    assert.equal(seen.filter((line) => line.startsWith('before')).length, 1, seen.join(', '));
    await first.stop();

    // Everything was acknowledged in the end: the next run of the session gets only what is new.
    const next: string[] = [];
    const second = runSource('fnbus-m8', (event) => {
      next.push(Buffer.from(event.body).toString());
      return Promise.resolve();
    });
    t.after(() => second.stop());
    await waitFor(
      async () => {
        await publish('m8/y', 'marker', { qos: 1 });
        return next.includes('marker');
      },
      { what: 'the marker' },
    );
    assert.deepEqual(
      next.filter((body) => body !== 'marker'),
      [],
    );
  });
});
