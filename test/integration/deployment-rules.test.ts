import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FunctionDeployment } from '../../core/function-types.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

const uniqueName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

describe('deployments are checked by the gateway, before any provider sees them', () => {
  let real: ProcessProvider;
  /** The specs the provider was given, by deploy and update. */
  const given: FunctionDeployment[] = [];
  let gateway: ReturnType<typeof buildGateway>;

  before(async () => {
    real = new ProcessProvider({ stateDir: makeTempDir('fnbus-rules-'), drainDelayMs: 0 });
    await real.start();
    // The real provider, with a record of what reached it.
    const provider = new Proxy(real, {
      get(target, key) {
        const value: unknown = Reflect.get(target, key, target);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (key === 'deploy' || key === 'update') given.push(args[0] as FunctionDeployment);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    gateway = buildGateway({ provider, config: readConfig({ basic_auth: 'false' }) });
    await gateway.ready();
  });
  after(async () => {
    await gateway.close();
    await real.close();
  });

  const send = (method: 'POST' | 'PUT', body: Record<string, unknown>) =>
    gateway.inject({ method, url: '/system/functions', payload: body });
  const describeFn = async (name: string) =>
    (await gateway.inject({ method: 'GET', url: `/system/function/${name}` })).json<{
      labels?: Record<string, string>;
      replicas?: number;
    }>();

  it('answers 400 naming what was wrong, and the provider never sees it', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ service: 'Bad_Name' }, /service/],
      [{ labels: { 'com.openfaas.scale.min': 'two' } }, /com\.openfaas\.scale\.min: "two"/],
      [
        { annotations: { 'com.openfaas.scale.min': '3', 'com.openfaas.scale.max': '2' } },
        /com\.openfaas\.scale\.max \(2\) is below/,
      ],
      [{ annotations: { 'fnbus.queue.max_inflight': 'lots' } }, /fnbus\.queue\.max_inflight/],
      [{ secrets: ['Not/A/Name'] }, /secrets/],
    ];
    for (const [extra, problem] of cases) {
      for (const method of ['POST', 'PUT'] as const) {
        const body = { service: uniqueName('bad'), image: 'x', envProcess: 'cat', ...extra };
        const res = await send(method, body);
        assert.equal(res.statusCode, 400, `${method} ${JSON.stringify(extra)}: ${res.body}`);
        assert.match(res.body, problem);
      }
    }
    assert.deepEqual(given, [], 'no bad deployment reached the provider');
  });

  it('puts faas_function: <name> on every function; another value given for it is replaced', async () => {
    const name = uniqueName('labelled');
    const res = await send('POST', {
      service: name,
      image: 'x',
      envProcess: 'cat',
      labels: { faas_function: 'someone-else', team: 'blue' },
    });
    assert.equal(res.statusCode, 202, res.body);
    assert.deepEqual(given.at(-1)?.labels, { faas_function: name, team: 'blue' });
    assert.deepEqual((await describeFn(name)).labels, {
      faas_function: name,
      team: 'blue',
    });
    const updated = await send('PUT', {
      service: name,
      image: 'x',
      envProcess: 'cat',
      labels: { faas_function: 'again' },
    });
    assert.equal(updated.statusCode, 202, updated.body);
    const listed = (await gateway.inject({ method: 'GET', url: '/system/functions' })).json<
      { name: string; labels?: Record<string, string> }[]
    >();
    assert.deepEqual(listed.find((fn) => fn.name === name)?.labels, { faas_function: name });
  });

  it('reads com.openfaas.scale.min from the label before the annotation, as OpenFaaS does', async () => {
    const name = uniqueName('min');
    const res = await send('POST', {
      service: name,
      image: 'x',
      envProcess: 'cat',
      labels: { 'com.openfaas.scale.min': '0' },
      annotations: { 'com.openfaas.scale.min': '2' },
    });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal((await describeFn(name)).replicas, 0);
    // Only an annotation: it is read.
    const other = uniqueName('min');
    await send('POST', {
      service: other,
      image: 'x',
      envProcess: 'cat',
      annotations: { 'com.openfaas.scale.min': '2' },
    });
    await waitFor(async () => (await real.get(other))?.availableReplicas === 2, {
      timeoutMs: 15_000,
      what: `${other} to have 2 ready replicas`,
    });
  });
});
