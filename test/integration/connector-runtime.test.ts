import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicAuthorization } from '../../client/gateway-client.js';
import { silentLogger } from '../../core/logger.js';
import type { SourceEvent } from '../../core/source.js';
import { cronKind } from '../../connectors/cron/cron-kind.js';
import { readConnectorConfig } from '../../connectors/sdk/config.js';
import type { InvokerResponse } from '../../connectors/sdk/controller.js';
import {
  runConnector,
  type ConnectorKind,
  type ConnectorSource,
  type KindConfig,
  type RunningConnector,
} from '../../connectors/sdk/run-connector.js';
import { webhookKind } from '../../connectors/webhook/webhook-kind.js';
import { firings, recorderProcess } from '../helpers/cron.js';
import { request } from '../helpers/http.js';
import {
  deployProcess,
  hubCredentials,
  ready,
  startHub,
  stopHub,
  type RunningHub,
} from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

/**
 * A broker in a test: events wait in it until a delivery resolves (the acknowledgement); a
 * rejected one stays and is emitted again, as a Kafka or MQTT source redelivers.
 */
class RedeliveringSource implements ConnectorSource {
  readonly pending: SourceEvent[];
  rejections = 0;
  emitted = 0;

  constructor(events: SourceEvent[]) {
    this.pending = [...events];
  }

  async start(
    emit: (event: SourceEvent) => Promise<InvokerResponse[]>,
    signal: AbortSignal,
  ): Promise<void> {
    while (!signal.aborted && this.pending.length > 0) {
      const event = this.pending[0]!;
      this.emitted += 1;
      try {
        await emit(event);
        this.pending.shift(); // acknowledged only now
      } catch {
        this.rejections += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    if (!signal.aborted) await once(signal, 'abort');
  }
}

/** A kind whose source is `source`, as a Kafka connector would be one more entry. */
function testKind(source: ConnectorSource): ConnectorKind<KindConfig> {
  return {
    name: 'test',
    connector: 'test-connector',
    readConfig: (env) => ({ connector: readConnectorConfig(env) }),
    createSource: () => Promise.resolve(source),
  };
}

const event = (topic: string, text: string): SourceEvent => ({
  topic,
  body: Buffer.from(text),
  headers: {},
});

const lines = (file: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];

/** A forked function that appends `<X-Topic>|<body>` per call. */
const recorder = (file: string) => `sh -c 'echo "$Http_X_Topic|$(cat)" >> ${file}'`;

const authorization = basicAuthorization(hubCredentials.user, hubCredentials.password);

describe('connectors started before their gateway', () => {
  const dir = makeTempDir('fnbus-connector-runtime-');
  const stateDir = join(dir, 'state');
  const calls = join(dir, 'calls');
  const ticks = join(dir, 'ticks');
  let port: number;
  let url: string;
  const cronSchedule = '@every 1s';

  // The functions are deployed by a first run of the hub, which then stops: the next run, on the
  // same port, serves them from its first answer, as a gateway restarted under its connectors.
  before(async () => {
    const first = await startHub(['--connectors', 'none'], stateDir);
    port = first.port;
    url = first.url;
    await deployProcess(url, 'early', recorder(calls), { topic: 'early' });
    await deployProcess(url, 'hook', recorder(calls), {
      topic: 'hooks',
      'fnbus.connector.invocation': 'sync',
    });
    await deployProcess(url, 'tick', recorderProcess(ticks), {
      topic: 'cron-function',
      schedule: cronSchedule,
      'fnbus.cron.missed': 'catch-up',
    });
    await ready(url, 'early');
    await stopHub(first.hub);
  });

  it('loses nothing: events held, webhooks answered 503 then taken, cron slots caught up', async (t) => {
    const env = { gateway_url: url, rebuild_interval: '300ms', print_response: 'false' };
    const running: RunningConnector[] = [];
    t.after(() => Promise.all(running.map((connector) => connector.stop())));

    // Cron: it last fired 4 s ago (its ledger says), so the slots since are owed.
    const lastFiredMs = Math.floor(Date.now() / 1000) * 1000 - 4000;
    writeFileSync(
      join(stateDir, 'cron-last-fired.json'),
      JSON.stringify({ [`tick.openfaas-fn|${cronSchedule}|UTC`]: lastFiredMs }),
    );
    const source = new RedeliveringSource(
      Array.from({ length: 5 }, (_, i) => event('early', `event-${i}`)),
    );
    const options = { logger: silentLogger, authorization, stopTimeoutMs: 2000 };
    running.push(await runConnector(testKind(source), { ...options, env }));
    running.push(await runConnector(cronKind, { ...options, env, host: { stateDir } }));
    const webhook = await runConnector(webhookKind, {
      ...options,
      env: { ...env, webhook_port: '0' },
    });
    running.push(webhook);

    // No gateway: a webhook is asked to come back, nothing is taken, acknowledged or fired.
    const hookUrl = `http://127.0.0.1:${webhook.source.port}/webhook/hooks`;
    const early = await request(hookUrl, { method: 'POST', body: 'hook-1' });
    assert.equal(early.status, 503, early.text);
    assert.equal(early.headers['retry-after'], '1');
    assert.equal(source.pending.length, 5, 'every event still held by its source');

    const upAt = Date.now();
    const hub: RunningHub = await startHub(['--connectors', 'none'], stateDir, {}, port);
    t.after(() => stopHub(hub.hub));

    // The sender retries as told, until taken.
    const taken = await waitFor(
      async () => {
        const res = await request(hookUrl, { method: 'POST', body: 'hook-1' });
        return res.status === 503 ? undefined : res;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'the webhook taken' },
    );
    assert.equal(taken.status, 200, taken.text);
    await waitFor(() => source.pending.length === 0, {
      timeoutMs: 20_000,
      what: 'every event acknowledged',
    });
    const recorded = lines(calls);
    for (let i = 0; i < 5; i++)
      assert.ok(recorded.includes(`early|event-${i}`), recorded.join('\n'));
    assert.ok(recorded.includes('hooks|hook-1'), recorded.join('\n'));

    // Slots owed from before the gateway answered are fired once it does.
    await waitFor(() => firings(ticks).filter((firing) => firing.scheduledMs < upAt).length >= 3, {
      timeoutMs: 20_000,
      what: 'the slots missed while the gateway was down',
    });
    const slots = firings(ticks).map((firing) => firing.scheduledMs);
    assert.ok(
      slots.every((slot) => slot > lastFiredMs),
      'nothing before the ledger’s last firing',
    );
    assert.equal(new Set(slots).size, slots.length, 'each slot once');
  });
});

describe('stopping a connector whose gateway never answers', () => {
  const sockets = new Set<Socket>();
  const silent = createTcpServer((socket) => sockets.add(socket));
  let silentUrl: string;
  before(async () => {
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
  });
  after(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });

  it('returns at once while the first topic map is waited for', async () => {
    const source = new RedeliveringSource([event('t', 'held')]);
    const connector = await runConnector(testKind(source), {
      env: { gateway_url: silentUrl },
      logger: silentLogger,
    });
    await waitFor(() => sockets.size > 0, { what: 'a connection to the silent gateway' });
    const asked = Date.now();
    await connector.stop();
    assert.ok(Date.now() - asked < 1000, `stopped in ${Date.now() - asked} ms`);
    await connector.done;
    assert.equal(source.pending.length, 1, 'the event is not acknowledged');
  });

  it('returns within its bound while calls and dead letters get no answer', async (t) => {
    // A gateway that lists its functions, then never answers a call or takes a dead letter.
    const held: { destroy(): void }[] = [];
    const gateway = createHttpServer((req, res) => {
      const json = (body: unknown) =>
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
      if (req.url === '/system/namespaces') return json([]);
      if (req.url === '/system/functions') {
        return json([
          { name: 'slow', annotations: { topic: 't' } },
          { name: 'failing', annotations: { topic: 't', 'com.openfaas.retry.attempts': '1' } },
        ]);
      }
      if (req.url === '/function/failing') return res.writeHead(500).end('no');
      held.push(req.socket); // /function/slow, /system/dead-letters: no answer ever
    });
    gateway.listen(0, '127.0.0.1');
    await once(gateway, 'listening');
    t.after(() => {
      for (const socket of held) socket.destroy();
      gateway.close();
    });
    const gatewayUrl = `http://127.0.0.1:${(gateway.address() as { port: number }).port}`;
    const source = new RedeliveringSource([event('t', 'stuck')]);
    const connector = await runConnector(testKind(source), {
      env: { gateway_url: gatewayUrl, print_response: 'false' },
      logger: silentLogger,
      stopTimeoutMs: 300,
    });
    // Both calls out: one waiting for its answer, the other's dead letter waiting to be taken.
    await waitFor(() => held.length >= 2, { what: 'a call and a dead letter without answers' });
    const asked = Date.now();
    await connector.stop();
    const tookMs = Date.now() - asked;
    assert.ok(tookMs < 2500, `stopped in ${tookMs} ms (bound: 300 ms + 1 s)`);
    // Nothing left waiting: the dead letter's call was aborted too, not left to its deadline.
    const settled = await Promise.race([
      connector.done.then(() => 'settled'),
      new Promise((resolve) => setTimeout(resolve, 500, 'pending')),
    ]);
    assert.equal(settled, 'settled');
    assert.equal(source.pending.length, 1, 'not acknowledged: redelivered at the next start');
  });
});
