import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { runCli, startCli } from '../helpers/cli.js';
import { freePort, request } from '../helpers/http.js';
import {
  connectorAuthEnv,
  deployProcess,
  hubCredentials,
  ready,
  startHub,
  stopHub,
  systemAuth,
} from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

/** A forked function that appends `topic|connector|X-GitHub-Event|body` per call, and answers. */
function recorder(file: string, answer = 'answered'): string {
  return `sh -c 'echo "$Http_X_Topic|$Http_X_Connector|$Http_X_Github_Event|$(cat)" >> ${file}; echo ${answer}'`;
}

const lines = (file: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];

async function deploy(
  url: string,
  name: string,
  fprocess: string,
  annotations: Record<string, string>,
) {
  await deployProcess(url, name, fprocess, annotations);
  await ready(url, name);
}

/** Until the gateway's map (rebuilt every 500 ms here) takes the topic. */
const mapped = (url: string, topic: string) =>
  waitFor(
    async () =>
      (await request(`${url}/webhook/${topic}`, { method: 'POST', body: '' })).status !== 404,
    { what: `the topic ${topic} to be mapped` },
  );

const env = { rebuild_interval: '500ms', webhook_max_body_bytes: '1000' };

describe('webhook connector in fnbus up', () => {
  it('queues a webhook for every function of its topic (202), with the topic and connector headers', async (t) => {
    const dir = makeTempDir('fnbus-webhook-');
    const file = join(dir, 'calls');
    const { hub, url } = await startHub([], join(dir, 'state'), env);
    t.after(() => stopHub(hub));
    await deploy(url, 'one', recorder(file), { topic: 'orders' });
    await deploy(url, 'two', recorder(file), { topic: 'orders,refunds' });
    await waitFor(
      async () => {
        const res = await request(`${url}/webhook/refunds`, { method: 'POST', body: 'warm-up' });
        return res.status === 202;
      },
      { what: 'the map' },
    );
    await waitFor(() => lines(file).length === 1, { what: 'the warm-up call' });

    const res = await request(`${url}/webhook/orders`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-GitHub-Event': 'push' },
      body: '{"order":1}',
    });
    assert.equal(res.status, 202, res.text);
    const { calls } = JSON.parse(res.text) as {
      calls: { function: string; status: number; callId: string }[];
    };
    assert.deepEqual(calls.map((c) => [c.function, c.status]).sort(), [
      ['one.openfaas-fn', 202],
      ['two.openfaas-fn', 202],
    ]);
    for (const call of calls) assert.match(call.callId, /^[0-9a-f-]{36}$/);
    await waitFor(() => lines(file).length === 3, { what: 'both calls to run' });
    assert.deepEqual(lines(file).slice(1), [
      'orders|webhook-connector|push|{"order":1}',
      'orders|webhook-connector|push|{"order":1}',
    ]);

    const unknown = await request(`${url}/webhook/nobody`, { method: 'POST', body: 'x' });
    assert.equal(unknown.status, 404);
    assert.match(unknown.text, /no function takes the topic "nobody"/);
    const big = await request(`${url}/webhook/orders`, { method: 'POST', body: 'x'.repeat(1001) });
    assert.equal(big.status, 413);
  });

  it('answers with the function’s answer for a topic with one function invoked synchronously', async (t) => {
    const dir = makeTempDir('fnbus-webhook-');
    const file = join(dir, 'calls');
    const { hub, url } = await startHub([], join(dir, 'state'), env);
    t.after(() => stopHub(hub));
    await deploy(url, 'sync', recorder(file, 'synchronous-answer'), {
      topic: 'ping',
      'fnbus.connector.invocation': 'sync',
    });
    await mapped(url, 'ping');
    const res = await request(`${url}/webhook/ping`, { method: 'POST', body: 'hello' });
    assert.equal(res.status, 200);
    assert.equal(res.text.trim(), 'synchronous-answer');
  });

  it('checks a GitHub signature: 401 and nothing invoked when bad or missing; a replayed delivery once', async (t) => {
    const dir = makeTempDir('fnbus-webhook-');
    const file = join(dir, 'calls');
    const { hub, url } = await startHub([], join(dir, 'state'), env);
    t.after(() => stopHub(hub));
    const secret = await request(`${url}/system/secrets`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...systemAuth },
      body: JSON.stringify({ name: 'gh-hook', value: 'hook-secret\n' }),
    });
    assert.equal(secret.status, 201, secret.text);
    await deploy(url, 'github', recorder(file), {
      topic: 'github-events',
      'fnbus.webhook.verify': 'github',
      'fnbus.webhook.secret': 'gh-hook',
    });
    await waitFor(
      async () =>
        (await request(`${url}/webhook/github-events`, { method: 'POST', body: '' })).status ===
        401,
      { what: 'the topic to be mapped' },
    );
    const body = '{"action":"opened"}';
    const signature = `sha256=${createHmac('sha256', 'hook-secret').update(body).digest('hex')}`;
    const send = (headers: Record<string, string>, payload = body) =>
      request(`${url}/webhook/github-events`, { method: 'POST', headers, body: payload });

    const missing = await send({ 'X-GitHub-Delivery': 'd-0' });
    assert.equal(missing.status, 401);
    assert.match(missing.text, /no X-Hub-Signature-256/);
    const tampered = await send({ 'X-Hub-Signature-256': signature }, '{"action":"closed"}');
    assert.equal(tampered.status, 401);
    assert.match(tampered.text, /does not match the body/);

    const good = {
      'X-Hub-Signature-256': signature,
      'X-GitHub-Delivery': 'd-1',
      'X-GitHub-Event': 'issues',
    };
    const first = await send(good);
    assert.equal(first.status, 202, first.text);
    assert.match(String(first.headers['x-call-id']), /^[0-9a-f-]{36}$/);
    const replay = await send(good);
    assert.equal(replay.status, 200);
    assert.match(replay.text, /d-1 was taken already/);
    await waitFor(() => lines(file).length === 1, { what: 'the signed call' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(
      lines(file),
      [`github-events|webhook-connector|issues|${body}`],
      'invoked once',
    );
  });

  it('verifies a topic named by webhook_verify: Stripe’s signature and timestamp', async (t) => {
    const dir = makeTempDir('fnbus-webhook-');
    const file = join(dir, 'calls');
    const { hub, url } = await startHub([], join(dir, 'state'), {
      ...env,
      webhook_verify: 'payments=stripe:stripe-key',
    });
    t.after(() => stopHub(hub));
    const secret = await request(`${url}/system/secrets`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...systemAuth },
      body: JSON.stringify({ name: 'stripe-key', value: 'whsec_e2e' }),
    });
    assert.equal(secret.status, 201, secret.text);
    await deploy(url, 'payments', recorder(file), { topic: 'payments' });
    const body = '{"id":"evt_e2e","type":"charge.succeeded"}';
    const stripe = (at: number, payload = body) => ({
      'Stripe-Signature': `t=${at},v1=${createHmac('sha256', 'whsec_e2e').update(`${at}.${payload}`).digest('hex')}`,
    });
    const now = Math.floor(Date.now() / 1000);
    await waitFor(
      async () =>
        (await request(`${url}/webhook/payments`, { method: 'POST', body: '{}' })).status === 401,
      { what: 'the topic to be mapped' },
    );
    const stale = await request(`${url}/webhook/payments`, {
      method: 'POST',
      headers: stripe(now - 600),
      body,
    });
    assert.equal(stale.status, 401);
    assert.match(stale.text, /tolerance 300 s/);
    const good = await request(`${url}/webhook/payments`, {
      method: 'POST',
      headers: stripe(now),
      body,
    });
    assert.equal(good.status, 202, good.text);
    const again = await request(`${url}/webhook/payments`, {
      method: 'POST',
      headers: stripe(now),
      body,
    });
    assert.equal(again.status, 200, 'the same event id is taken once');
    await waitFor(() => lines(file).length === 1, { what: 'the payment call' });
  });

  /** `fnbus connector webhook` alone against a hub, authenticated by `auth(hubUrl)`'s env. */
  const runsAlone = async (
    t: TestContext,
    auth: (url: string) => Promise<NodeJS.ProcessEnv>,
  ): Promise<void> => {
    const dir = makeTempDir('fnbus-webhook-');
    const file = join(dir, 'calls');
    const { hub, url } = await startHub(['--connectors', 'none'], join(dir, 'state'));
    t.after(() => stopHub(hub));
    await deploy(url, 'alone', recorder(file), { topic: 'standalone' });
    const port = await freePort();
    const connector = startCli(['connector', 'webhook', '--gateway', url], {
      ...(await auth(url)),
      webhook_port: String(port),
      metrics_port: '0',
    });
    t.after(async () => {
      connector.child.kill('SIGTERM');
      await once(connector.child, 'exit');
    });
    await waitFor(() => connector.stdout().includes('webhooks listening'), {
      what: 'the connector',
    });
    await waitFor(
      async () =>
        (
          await request(`http://127.0.0.1:${port}/webhook/standalone`, {
            method: 'POST',
            body: 'alone',
          }).catch(() => ({ status: 0 }))
        ).status === 202,
      { what: 'a webhook taken' },
    );
    await waitFor(() => lines(file).length >= 1, { what: 'the call' });
    assert.equal(lines(file)[0], 'standalone|webhook-connector||alone');
  };

  it('runs alone as fnbus connector webhook, on its own port, against a gateway', (t) =>
    runsAlone(t, () => Promise.resolve(connectorAuthEnv())));

  it('answers 503 with Retry-After, not 404, while its topic map is not built yet', async (t) => {
    // A gateway that does not answer: the connector never has a map.
    const gateway = await freePort();
    const port = await freePort();
    const connector = startCli(
      ['connector', 'webhook', '--gateway', `http://127.0.0.1:${gateway}`],
      {
        webhook_port: String(port),
        metrics_port: '0',
      },
    );
    t.after(async () => {
      connector.child.kill('SIGTERM');
      await once(connector.child, 'exit');
    });
    await waitFor(() => connector.stdout().includes('webhooks listening'), {
      what: 'the connector',
    });
    const res = await request(`http://127.0.0.1:${port}/webhook/orders`, {
      method: 'POST',
      body: '{}',
    });
    assert.equal(res.status, 503, res.text);
    assert.equal(res.headers['retry-after'], '1');
    assert.match(res.text, /topic map is not built yet/);
  });

  it('runs alone with the login `fnbus login` saved for the gateway', (t) =>
    runsAlone(t, async (url) => {
      const env = { OPENFAAS_CONFIG: makeTempDir('fnbus-logins-') };
      const login = await runCli(
        ['login', '--gateway', url, '--username', hubCredentials.user, '--password-stdin'],
        env,
        hubCredentials.password,
      );
      assert.equal(login.code, 0, login.stderr);
      return env;
    }));
});
