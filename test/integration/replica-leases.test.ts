import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { GatewayInvoker } from '../../client/gateway-invoker.js';
import { ReplicaInvoker } from '../../cli/replica-invoker.js';
import { ReplicaLeases } from '../../cli/replica-leases.js';
import type { InvokeRequest, InvokeResult } from '../../core/invoker.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, fprocess, makeTempDir } from '../helpers/watchdog.js';

const uniqueName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

const call = (path: string, headers: Record<string, string> = {}): InvokeRequest => {
  const [pathOnly = '/', query = ''] = path.split('?');
  return { method: 'POST', path: pathOnly, query, headers, body: new TextEncoder().encode('x') };
};
const text = (result: InvokeResult) => new TextDecoder().decode(result.body);

/**
 * The queue worker's direct path of `fnbus up` (cli/replica-leases.ts on the hub's thread,
 * cli/replica-invoker.ts on the worker's), on one thread here over a MessageChannel as across
 * threads: the calls reach the replicas without the gateway's route, under the replicas' limits
 * and counted in the gateway's metrics.
 */
describe('the queue worker calling the hub replicas directly', () => {
  let provider: ProcessProvider;
  let gateway: ReturnType<typeof buildGateway>;
  let registry: Registry;
  let url: string;
  let viaGateway = 0;
  let invoker: ReplicaInvoker;
  let releaseAll: () => void;
  const echo = uniqueName('echo');
  const single = uniqueName('single');
  const sleepy = uniqueName('sleepy');
  const idle = uniqueName('idle');

  const deploy = async (name: string, envVars: Record<string, string> = {}) => {
    await provider.deploy({
      service: name,
      image: 'fnbus/node-http-server',
      envProcess: fprocess('node', fixture('node-http-server.cjs')),
      envVars: { mode: 'http', ...envVars },
    });
  };
  const ready = (name: string) =>
    waitFor(async () => (await provider.get(name))?.availableReplicas === 1, {
      timeoutMs: 15_000,
      what: `${name} to be ready`,
    });
  const metric = async (line: RegExp) => {
    const found = (await registry.metrics()).split('\n').find((l) => line.test(l));
    return Number(found?.split(' ').at(-1) ?? 0);
  };

  /** Calls to `name` the gateway counted as started and not yet as over. */
  const inFlight = async (name: string) => {
    const full = `function_name="${name}.openfaas-fn"`;
    let started = 0;
    let over = 0;
    for (const line of (await registry.metrics()).split('\n')) {
      const value = Number(line.split(' ').at(-1));
      if (line.startsWith(`gateway_function_invocation_started{${full}}`)) started = value;
      if (line.startsWith(`gateway_function_invocation_total{${full},`)) over += value;
    }
    return started - over;
  };
  /**
   * Until no call to `name` is in flight: the worker's side has its answer a moment before the
   * hub's side hears the call is over (as a caller of the gateway has its answer before the
   * gateway sees the connection's close).
   */
  const settled = (name: string) =>
    waitFor(async () => (await inFlight(name)) === 0, { what: `the calls to ${name} to be over` });
  const holding = (name: string) =>
    waitFor(async () => (await inFlight(name)) === 1, { what: `a call to ${name} in flight` });

  before(async () => {
    provider = new ProcessProvider({ stateDir: makeTempDir('fnbus-leases-'), drainDelayMs: 0 });
    await provider.start();
    registry = new Registry();
    const config = readConfig({ basic_auth: 'false', upstream_timeout: '3s' });
    // As in `fnbus up`: the gateway hands calls to the replicas in this process, so a call it
    // counts as started is in the replica's max_inflight at once (proxied over HTTP, it would
    // reach the watchdog a moment later, and a direct call could take the slot meanwhile).
    gateway = buildGateway({
      provider,
      config,
      registry,
      resolveLocal: (name, namespace) => provider.resolveLocal(name, namespace),
    });
    await gateway.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
    const leases = new ReplicaLeases({
      provider,
      metrics: gateway.functionMetrics,
      registry,
      functionNamespace: config.functionNamespace,
      upstreamTimeoutMs: config.upstreamTimeoutMs,
    });
    const channel = new MessageChannel();
    releaseAll = leases.serve(channel.port1);
    // The gateway's route, counted: calls the direct path cannot take go there.
    const through = new GatewayInvoker({ gatewayUrl: url, timeoutMs: 0 });
    invoker = new ReplicaInvoker({
      port: channel.port2,
      gatewayHost: new URL(url).host,
      gateway: {
        invoke: (fn, req, limits) => {
          viaGateway += 1;
          return through.invoke(fn, req, limits);
        },
        close: () => through.close(),
      },
    });
    await deploy(echo);
    await deploy(single, { max_inflight: '1' });
    await deploy(sleepy, { exec_timeout: '300ms' });
    await deploy(idle);
    await Promise.all([ready(echo), ready(single), ready(sleepy), ready(idle)]);
  });
  after(async () => {
    await invoker.close();
    releaseAll();
    await gateway.close();
    await provider.close();
  });

  it('calls the replica without the gateway route, with the call headers the gateway sets', async () => {
    const before = viaGateway;
    const result = await invoker.invoke(
      echo,
      call('/some/path?a=1', { 'X-Call-Id': 'the-call', 'X-Test': 'yes' }),
    );
    assert.equal(result.status, 201);
    assert.equal(viaGateway, before, 'not through the gateway');
    assert.equal(result.headers['x-call-id'], 'the-call');
    assert.match(String(result.headers['x-start-time']), /^\d{19}$/);
    assert.match(String(result.headers['x-duration-seconds']), /^\d+\.\d{6}$/);
    const seen = JSON.parse(text(result)) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/some/path?a=1');
    assert.equal(seen.headers['x-test'], 'yes');
    assert.equal(seen.headers['x-call-id'], 'the-call');
    assert.equal(seen.headers.host, new URL(url).host, 'Host as through the gateway');
    assert.equal(seen.headers['x-forwarded-host'], new URL(url).host);
  });

  it("counts in the gateway's metrics, as a call through /function does", async () => {
    const name = `${echo}.openfaas-fn`;
    const total = new RegExp(
      `^gateway_function_invocation_total\\{function_name="${name}",code="201"\\}`,
    );
    const started = new RegExp(`^gateway_function_invocation_started\\{function_name="${name}"\\}`);
    const direct = new RegExp(`^queue_worker_direct_calls_total\\{function_name="${name}"\\}`);
    const count = async () =>
      (
        JSON.parse((await request(`${url}/system/function/${echo}`)).text) as {
          invocationCount: number;
        }
      ).invocationCount;
    await settled(echo);
    const [total0, started0, direct0, count0] = [
      await metric(total),
      await metric(started),
      await metric(direct),
      await count(),
    ];
    await invoker.invoke(echo, call('/'));
    await settled(echo);
    assert.equal(await metric(total), total0 + 1);
    assert.equal(await metric(started), started0 + 1);
    assert.equal(await metric(direct), direct0 + 1);
    const seconds = new RegExp(
      `^gateway_functions_seconds_count\\{function_name="${name}",code="201"\\}`,
    );
    assert.ok((await metric(seconds)) >= 1);
    // And /system/function's invocationCount, which comes from the same counter.
    assert.equal(await count(), count0 + 1);
  });

  it("keeps the replica's max_inflight, shared with calls through the gateway", async () => {
    // A call through the gateway holds the one slot: the direct call is refused 429.
    await settled(single);
    // Held long enough that a loaded machine still sees it in flight when the direct call comes.
    const held = request(`${url}/function/${single}/concurrency?ms=2000`);
    await holding(single);
    const refused = await invoker.invoke(single, call('/'));
    const heldAnswer = await held;
    assert.equal(refused.status, 429, `the held call answered ${heldAnswer.status}`);
    assert.ok(refused.headers['X-OpenFaaS-Internal'], 'an answer of fnbus, not the function');
    assert.equal(heldAnswer.status, 200);

    // A direct call holds the slot: the gateway's route is refused 429 meanwhile.
    await settled(single);
    const direct = invoker.invoke(single, call('/concurrency?ms=2000'));
    await holding(single);
    assert.equal((await request(`${url}/function/${single}`)).status, 429);
    const answered = await direct;
    assert.equal(answered.status, 200);
    assert.equal(text(answered), '1', 'never two at once');
    await settled(single);
    assert.equal((await invoker.invoke(single, call('/'))).status, 201, 'the slot is free again');
  });

  it('ends a call at exec_timeout (504) and at upstream_timeout (502)', async () => {
    const late = await invoker.invoke(sleepy, call('/slow?ms=2000'));
    assert.equal(late.status, 504);
    assert.ok(late.headers['X-OpenFaaS-Internal']);
    const past = await invoker.invoke(echo, call('/slow?ms=5000'));
    assert.equal(past.status, 502, 'upstream_timeout is 3s');
    // The slots are given back: the function takes calls at once.
    await settled(sleepy);
    assert.equal((await invoker.invoke(sleepy, call('/'))).status, 201);
  });

  it("rejects at the caller's own limit when it ends before the function's timeout", async () => {
    const startedAt = Date.now();
    await assert.rejects(invoker.invoke(sleepy, call('/slow?ms=2000'), { timeoutMs: 100 }), {
      name: 'TimeoutError',
    });
    assert.ok(Date.now() - startedAt < 290, "before the function's 300ms");
    const stop = new AbortController();
    setTimeout(() => stop.abort(new Error('worker stopping')), 50);
    await assert.rejects(invoker.invoke(echo, call('/slow?ms=2000'), { signal: stop.signal }), {
      message: 'worker stopping',
    });
    // A longer limit leaves the function's timeout to answer, as the watchdog would.
    const late = await invoker.invoke(sleepy, call('/slow?ms=2000'), { timeoutMs: 5000 });
    assert.equal(late.status, 504);
    await settled(sleepy);
    await settled(echo);
  });

  it('goes through the gateway when no replica is ready: scale from zero, 404', async () => {
    await provider.scale(idle, 0);
    await waitFor(async () => (await provider.get(idle))?.availableReplicas === 0, {
      timeoutMs: 10_000,
      what: `${idle} to be at zero`,
    });
    const before = viaGateway;
    const woken = await invoker.invoke(idle, call('/'));
    assert.equal(woken.status, 201);
    assert.equal(viaGateway, before + 1, 'the gateway woke it');
    assert.equal((await invoker.invoke('no-such-fn', call('/'))).status, 404);
    assert.equal(viaGateway, before + 2);
    // Once up, the direct path again.
    assert.equal((await invoker.invoke(idle, call('/'))).status, 201);
    assert.equal(viaGateway, before + 2);
  });

  it('gives back the slots of a worker that ended mid-call', async () => {
    await settled(single);
    const channel = new MessageChannel();
    const leases = new ReplicaLeases({
      provider,
      metrics: gateway.functionMetrics,
      registry: new Registry(),
      functionNamespace: 'openfaas-fn',
      upstreamTimeoutMs: 0,
    });
    const release = leases.serve(channel.port1);
    const granted = new Promise<unknown>((resolve) => channel.port2.once('message', resolve));
    channel.port2.postMessage([
      {
        type: 'lease',
        id: 1,
        fn: single,
        method: 'POST',
        path: '/',
        callId: 'gone',
        bodyBytes: 0,
      },
    ]);
    assert.deepEqual(
      ((await granted) as { type: string }[]).map((answer) => answer.type),
      ['granted'],
    );
    // The worker is gone without saying the call is over: the slot stays taken...
    assert.equal((await request(`${url}/function/${single}`)).status, 429);
    // ...until its thread's end releases what it held.
    release();
    channel.port2.close();
    assert.equal((await request(`${url}/function/${single}`)).status, 201);
  });
});
