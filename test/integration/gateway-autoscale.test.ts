import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { openRequest, request } from '../helpers/http.js';
import { startHub, stopHub, systemAuth, type RunningHub } from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, fprocess, makeTempDir } from '../helpers/watchdog.js';

const uniqueName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
const credentials = { user: 'admin', password: 'scale me' };
const auth = {
  Authorization: `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64')}`,
};

/** A gateway over a fresh process provider, with the settings given (auth on, known credentials). */
async function startGateway(env: Record<string, string>) {
  const provider = new ProcessProvider({ stateDir: makeTempDir('fnbus-scale-'), drainDelayMs: 0 });
  await provider.start();
  const gateway = buildGateway({
    provider,
    resolveLocal: (name, namespace) => provider.resolveLocal(name, namespace),
    config: readConfig(env),
    credentials,
  });
  await gateway.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
  const deploy = (name: string, labels: Record<string, string>) =>
    provider.deploy({ service: name, image: 'fnbus/cat', envProcess: fprocess('cat'), labels });
  const replicas = async (name: string) => (await provider.get(name))?.replicas;
  const close = async () => {
    await gateway.close();
    await provider.close();
  };
  return { provider, gateway, url, deploy, replicas, close };
}

type Hub = Awaited<ReturnType<typeof startGateway>>;

const waitReplicas = (hub: Hub, name: string, count: number, timeoutMs = 15_000) =>
  waitFor(async () => (await hub.replicas(name)) === count, {
    timeoutMs,
    what: `${name} at ${count} replicas`,
  });

/** `fnbus_autoscaler_scalings_total` of a function (in the default namespace) for one cause. */
async function scalings(hub: Hub, name: string, cause: string): Promise<number> {
  const series = `fnbus_autoscaler_scalings_total{function_name="${name}.openfaas-fn",cause="${cause}"} `;
  const line = (await hub.gateway.functionMetrics.registry.metrics())
    .split('\n')
    .find((one) => one.startsWith(series));
  return Number(line?.slice(series.length) ?? 0);
}

const counted = (hub: Hub, name: string, cause: string, count: number) =>
  waitFor(async () => (await scalings(hub, name, cause)) === count, {
    what: `${name}'s ${cause} scalings to be ${count}`,
  });

describe('autoscaler: the APIHighInvocationRate rule from the gateway own counters', () => {
  let hub: Hub;
  before(async () => {
    // The rule's windows, shortened: seconds, not a minute.
    hub = await startGateway({
      FNBUS_AUTOSCALE_WINDOW: '1s',
      FNBUS_AUTOSCALE_FOR: '300ms',
      FNBUS_AUTOSCALE_INTERVAL: '100ms',
      FNBUS_IDLER: 'false',
    });
  });
  after(async () => hub.close());

  it('scales a function with min 1, max 2 to 2 under load, and back to 1 once it stops; factor 0 stays', async () => {
    const busy = uniqueName('busy');
    const fixed = uniqueName('fixed');
    const range = { 'com.openfaas.scale.min': '1', 'com.openfaas.scale.max': '2' };
    await hub.deploy(busy, range);
    await hub.deploy(fixed, { ...range, 'com.openfaas.scale.factor': '0' });
    await waitReplicas(hub, busy, 1);
    // Load on both (well above 5 calls a second) until the rule fires for the first.
    let calls = 0;
    await waitFor(
      async () => {
        for (const name of [busy, fixed]) {
          const answer = await request(`${hub.url}/function/${name}`, {
            method: 'POST',
            body: 'x',
          });
          assert.equal(answer.status, 200);
          calls += 1;
        }
        return (await hub.replicas(busy)) === 2;
      },
      { timeoutMs: 20_000, intervalMs: 0, what: `${busy} to scale to 2` },
    );
    assert.ok(calls > 10, `${calls} calls`);
    assert.equal(await hub.replicas(fixed), 1, 'com.openfaas.scale.factor=0: no scaling');
    // The load stopped: the rate falls below 5 a second within the window; resolved → min.
    await waitReplicas(hub, busy, 1);
    assert.equal(await hub.replicas(fixed), 1);
    // Each scaling counted, by cause (once the scale has returned); none for the function that
    // does not scale.
    await counted(hub, busy, 'load', 1);
    await counted(hub, busy, 'load_resolved', 1);
    assert.equal(await scalings(hub, fixed, 'load'), 0);
  });
});

describe('POST /system/alert: AlertManager webhook, as OpenFaaS takes it', () => {
  let hub: Hub;
  before(async () => {
    hub = await startGateway({ FNBUS_AUTOSCALE: 'false', FNBUS_IDLER: 'false' });
  });
  after(async () => hub.close());

  const alert = (status: string, functionName: string) =>
    JSON.stringify({
      receiver: 'scale-up',
      status,
      alerts: [
        {
          status,
          labels: { alertname: 'APIHighInvocationRate', function_name: functionName },
        },
      ],
    });
  const post = (body: string, headers: Record<string, string> = auth) =>
    request(`${hub.url}/system/alert`, {
      method: 'POST',
      body,
      headers: { ...headers, 'Content-Type': 'application/json' },
    });

  it('scales up by the step on firing (to max), back to min on resolved; factor 0 leaves it', async () => {
    const name = uniqueName('alerted');
    await hub.deploy(name, { 'com.openfaas.scale.min': '1', 'com.openfaas.scale.max': '2' });
    assert.equal((await post(alert('firing', name), {})).status, 401, 'authenticated as /system');
    assert.equal((await post(alert('firing', name))).status, 200);
    assert.equal(await hub.replicas(name), 2);
    // Already at max: stays.
    assert.equal((await post(alert('firing', `${name}.openfaas-fn`))).status, 200);
    assert.equal(await hub.replicas(name), 2);
    assert.equal((await post(alert('resolved', name))).status, 200);
    assert.equal(await hub.replicas(name), 1);

    const disabled = uniqueName('factor-zero');
    await hub.deploy(disabled, { 'com.openfaas.scale.factor': '0' });
    assert.equal((await post(alert('firing', disabled))).status, 200);
    assert.equal(await hub.replicas(disabled), 1);

    // No max label: OpenFaaS's 5 at most, one step (ceil(5 × 10%)) each firing.
    const open = uniqueName('open');
    await hub.deploy(open, {});
    for (const want of [2, 3, 4, 5, 5]) {
      assert.equal((await post(alert('firing', open))).status, 200);
      assert.equal(await hub.replicas(open), want);
    }
  });

  it('answers 400 to a body that is not an alert, 200 for an unknown function', async () => {
    const bad = await post('{"status": "firing", "alerts": [');
    assert.equal(bad.status, 400);
    assert.equal((await post('{"alerts": "many"}')).status, 400);
    assert.equal((await post('{"alerts": [{"labels": {"function_name": 7}}]}')).status, 400);
    assert.equal((await post(alert('firing', uniqueName('nobody')))).status, 200);
    assert.equal((await post('{}')).status, 200);
  });
});

describe('idler: com.openfaas.scale.zero=true functions idle to zero', () => {
  let hub: Hub;
  before(async () => {
    hub = await startGateway({
      FNBUS_AUTOSCALE: 'false',
      FNBUS_AUTOSCALE_INTERVAL: '100ms',
    });
  });
  after(async () => hub.close());

  it('scales an idle one to 0, never one with a call in flight, and the next call wakes it', async () => {
    const zero = { 'com.openfaas.scale.zero': 'true', 'com.openfaas.scale.zero-duration': '500ms' };
    const busy = uniqueName('busy');
    const idle = uniqueName('idle');
    const kept = uniqueName('kept');
    await hub.deploy(busy, zero);
    await hub.deploy(kept, { 'com.openfaas.scale.zero-duration': '500ms' });
    await waitReplicas(hub, busy, 1);
    // A call whose body is not sent yet: in flight from here until its end is written.
    const call = openRequest(`${hub.url}/function/${busy}`, {
      method: 'POST',
      headers: { 'Content-Length': '5' },
      timeoutMs: 30_000,
    });
    call.req.write('he');
    await waitFor(() => hub.gateway.functionMetrics.peek(`${busy}.openfaas-fn`)?.inFlight === 1, {
      what: 'the call to be in flight',
    });
    // Deployed after the call started, idle as long: once it is at zero, so would busy be.
    await hub.deploy(idle, zero);
    await waitReplicas(hub, idle, 0);
    assert.equal(await hub.replicas(busy), 1, 'a call in flight is not cut');
    call.req.end('llo');
    const answer = await call.response;
    assert.equal(answer.status, 200);
    assert.equal(answer.text, 'hello');
    await waitReplicas(hub, busy, 0);
    await counted(hub, busy, 'idle', 1);
    // Without the label: never idled.
    assert.equal(await hub.replicas(kept), 1);
    assert.equal(await scalings(hub, kept, 'idle'), 0);
    // Scale from zero: the next call wakes it.
    const woken = await request(`${hub.url}/function/${idle}`, { method: 'POST', body: 'up' });
    assert.equal(woken.status, 200);
    assert.equal(woken.text, 'up');
    assert.equal(await hub.replicas(idle), 1);
  });

  it('does not idle a function whose woken replica a held call still waits for', async () => {
    // An http-mode function whose process listens only once `gate` exists.
    const gate = join(makeTempDir('fnbus-gate-'), 'open');
    const held = uniqueName('held');
    const script = `while [ ! -e "$GATE" ]; do sleep 0.02; done; exec node "$SERVER"`;
    await hub.provider.deploy({
      service: held,
      image: 'fnbus/gated',
      envProcess: fprocess('sh', '-c', script),
      envVars: { mode: 'http', GATE: gate, SERVER: fixture('node-http-server.cjs') },
      labels: {
        'com.openfaas.scale.min': '0',
        'com.openfaas.scale.zero': 'true',
        'com.openfaas.scale.zero-duration': '300ms',
      },
    });
    assert.equal(await hub.replicas(held), 0);
    const call = request(`${hub.url}/function/${held}`, { timeoutMs: 30_000 });
    await waitReplicas(hub, held, 1);
    const control = uniqueName('control');
    await hub.deploy(control, {
      'com.openfaas.scale.zero': 'true',
      'com.openfaas.scale.zero-duration': '300ms',
    });
    await waitReplicas(hub, control, 0);
    assert.equal(await hub.replicas(held), 1, 'the held call keeps its replica');
    writeFileSync(gate, '');
    // The fixture's own answer.
    assert.equal((await call).status, 201);
  });
});

describe('fnbus up scales as the certifier expects, on by default', () => {
  let running: RunningHub;
  before(async () => {
    // Only the windows are shortened (and the idle time, which the certifier's function does not
    // set): the autoscaler and the idler are on by default.
    running = await startHub(['--connectors', 'none'], makeTempDir('fnbus-scale-hub-'), {
      FNBUS_AUTOSCALE_WINDOW: '1s',
      FNBUS_AUTOSCALE_FOR: '300ms',
      FNBUS_AUTOSCALE_INTERVAL: '100ms',
      FNBUS_SCALE_ZERO_DURATION: '1s',
    });
  });
  after(async () => stopHub(running.hub));

  const replicas = async (name: string) => {
    const res = await request(`${running.url}/system/function/${name}`, { headers: systemAuth });
    return (JSON.parse(res.text) as { replicas: number }).replicas;
  };
  const deploy = async (name: string, labels: Record<string, string>) => {
    const res = await request(`${running.url}/system/functions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...systemAuth },
      body: JSON.stringify({
        service: name,
        image: 'functions/alpine:latest',
        envProcess: 'sha512sum',
        labels,
      }),
    });
    assert.equal(res.status, 202, res.text);
  };
  /** Calls `name` back to back until it has `count` replicas. */
  const loadUntil = (name: string, count: number) =>
    waitFor(
      async () => {
        const answer = await request(`${running.url}/function/${name}`, { method: 'POST' });
        assert.equal(answer.status, 200);
        return (await replicas(name)) === count;
      },
      { timeoutMs: 20_000, intervalMs: 0, what: `${name} to scale to ${count}` },
    );
  const settles = (name: string, count: number) =>
    waitFor(async () => (await replicas(name)) === count, {
      timeoutMs: 15_000,
      what: `${name} back to ${count}`,
    });

  it('Test_ScaleUpAndDownFromThroughPut: min 1, max 2: to 2 under load, back to 1 after', async () => {
    const name = uniqueName('test-throughput-scaling');
    await deploy(name, { 'com.openfaas.scale.min': '1', 'com.openfaas.scale.max': '2' });
    await loadUntil(name, 2);
    await settles(name, 1);
  });

  it('Test_ScaleToZero: max 2, zero: to 2 under load, then to 0 when idle', async () => {
    const name = uniqueName('test-scaling-to-zero');
    await deploy(name, { 'com.openfaas.scale.max': '2', 'com.openfaas.scale.zero': 'true' });
    await loadUntil(name, 2);
    await settles(name, 0);
    assert.equal(
      (await request(`${running.url}/function/${name}`, { method: 'POST', body: 'x' })).status,
      200,
    );
  });
});
