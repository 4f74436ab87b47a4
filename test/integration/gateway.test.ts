import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

const uniqueName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

describe('gateway over the process provider', () => {
  let provider: ProcessProvider;
  let gateway: ReturnType<typeof buildGateway>;
  let url: string;

  before(async () => {
    provider = new ProcessProvider({ stateDir: makeTempDir('fnbus-gateway-') });
    await provider.start();
    gateway = buildGateway({
      provider,
      config: readConfig({ max_system_body_bytes: '4096', basic_auth: 'false' }),
    });
    await gateway.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await gateway.close();
    await provider.close();
  });

  const deploy = (service: string, extra: Record<string, unknown> = {}) =>
    gateway.inject({
      method: 'POST',
      url: '/system/functions',
      payload: { service, image: 'fnbus/cat:latest', envProcess: 'cat', ...extra },
    });

  const waitReady = (service: string, replicas = 1) =>
    waitFor(
      async () => {
        const res = await gateway.inject({ method: 'GET', url: `/system/function/${service}` });
        const status = res.json<{ availableReplicas?: number }>();
        return res.statusCode === 200 && status.availableReplicas === replicas;
      },
      { timeoutMs: 15_000, what: `${service} to have ${replicas} ready replicas` },
    );

  it('deploys, lists, describes, invokes, counts, scales, updates and removes a function', async () => {
    const name = uniqueName('echo');
    assert.equal((await deploy(name)).statusCode, 202);
    await waitReady(name);

    const list = (await gateway.inject({ method: 'GET', url: '/system/functions' })).json<
      { name: string; image: string; envProcess?: string }[]
    >();
    const listed = list.find((fn) => fn.name === name);
    assert.equal(listed?.image, 'fnbus/cat:latest');
    assert.equal(listed?.envProcess, 'cat');

    const res = await request(`${url}/function/${name}`, {
      method: 'POST',
      body: 'hello',
      headers: { 'X-Call-Id': 'call-1' },
    });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'hello');
    assert.equal(res.headers['x-call-id'], 'call-1');
    assert.ok(res.headers['x-start-time']);
    assert.ok(res.headers['x-duration-seconds']);
    const generated = await request(`${url}/function/${name}.openfaas-fn/sub/path?x=1`, {
      method: 'PUT',
      body: 'again',
    });
    assert.equal(generated.text, 'again');
    assert.match(String(generated.headers['x-call-id']), /^[0-9a-f-]{36}$/);

    const described = (
      await gateway.inject({ method: 'GET', url: `/system/function/${name}` })
    ).json<{
      invocationCount: number;
    }>();
    assert.equal(described.invocationCount, 2);

    const scaled = await gateway.inject({
      method: 'POST',
      url: `/system/scale-function/${name}`,
      payload: { serviceName: name, replicas: 2 },
    });
    assert.equal(scaled.statusCode, 202);
    await waitReady(name, 2);

    const updated = await gateway.inject({
      method: 'PUT',
      url: '/system/functions',
      payload: { service: name, image: 'fnbus/sha:latest', envProcess: 'sha512sum' },
    });
    assert.equal(updated.statusCode, 202);
    await waitFor(
      async () =>
        /^[0-9a-f]{128} {2}-\n$/.test(
          (await request(`${url}/function/${name}`, { method: 'POST', body: 'x' })).text,
        ),
      {
        timeoutMs: 15_000,
        what: 'the update to serve',
      },
    );

    const removed = await gateway.inject({
      method: 'DELETE',
      url: '/system/functions',
      payload: { functionName: name },
    });
    assert.equal(removed.statusCode, 202);
    assert.equal(
      (await gateway.inject({ method: 'GET', url: `/system/function/${name}` })).statusCode,
      404,
    );
    assert.equal(
      (await request(`${url}/function/${name}`, { method: 'POST', body: 'x' })).status,
      404,
    );
  });

  it('scales a function from zero on its first call', async () => {
    const name = uniqueName('zero');
    await deploy(name);
    await waitReady(name);
    await gateway.inject({
      method: 'POST',
      url: `/system/scale-function/${name}`,
      payload: { replicas: 0 },
    });
    await waitReady(name, 0);
    const res = await request(`${url}/function/${name}`, { method: 'POST', body: 'wake up' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'wake up');
  });

  it('reads /system bodies as JSON whatever their Content-Type, as OpenFaaS does', async () => {
    const name = uniqueName('form');
    const res = await request(`${url}/system/functions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: JSON.stringify({ service: name, image: 'fnbus/cat:latest', envProcess: 'cat' }),
    });
    assert.equal(res.status, 202, res.text);
    const broken = await request(`${url}/system/functions`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: '{"service": ',
    });
    assert.equal(broken.status, 400);
  });

  it('answers 404 for an unknown function, on both route families', async () => {
    assert.equal((await request(`${url}/function/nope-${Date.now()}`)).status, 404);
    assert.equal(
      (await gateway.inject({ method: 'GET', url: '/system/function/nope' })).statusCode,
      404,
    );
  });

  it('refuses bad input with a 400 that says what was wrong', async () => {
    const broken = await gateway.inject({
      method: 'POST',
      url: '/system/functions',
      headers: { 'content-type': 'application/json' },
      payload: '{"service": ',
    });
    assert.equal(broken.statusCode, 400);

    const badName = await deploy('Bad_Name');
    assert.equal(badName.statusCode, 400);
    assert.match(badName.body, /service/);

    const noImage = await gateway.inject({
      method: 'POST',
      url: '/system/functions',
      payload: { service: 'x' },
    });
    assert.equal(noImage.statusCode, 400);
    assert.match(noImage.body, /image/);

    const wrongType = await gateway.inject({
      method: 'POST',
      url: '/system/scale-function/x',
      payload: { replicas: '2' },
    });
    assert.equal(wrongType.statusCode, 400);
    assert.match(wrongType.body, /replicas/);

    const tooBig = await deploy('big', { envVars: { A: 'x'.repeat(8000) } });
    assert.equal(tooBig.statusCode, 413);
  });

  it('refuses a duplicate deploy with 409 and an update of an unknown function with 404', async () => {
    const name = uniqueName('dup');
    await deploy(name);
    assert.equal((await deploy(name)).statusCode, 409);
    const unknown = await gateway.inject({
      method: 'PUT',
      url: '/system/functions',
      payload: { service: uniqueName('ghost'), image: 'x', envProcess: 'cat' },
    });
    assert.equal(unknown.statusCode, 404);
  });

  it('serves info, namespaces and health', async () => {
    const info = (await gateway.inject({ method: 'GET', url: '/system/info' })).json<{
      provider: { orchestration: string };
      arch: string;
    }>();
    assert.equal(info.provider.orchestration, 'process');
    assert.ok(info.arch);
    assert.deepEqual((await gateway.inject({ method: 'GET', url: '/system/namespaces' })).json(), [
      'openfaas-fn',
    ]);
    assert.equal((await gateway.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    // The process provider manages namespaces (test/integration/namespaces.test.ts); the default
    // one always exists.
    const own = await gateway.inject({ method: 'GET', url: '/system/namespace/openfaas-fn' });
    assert.equal(own.statusCode, 200, own.body);
    assert.equal(own.json<{ name: string }>().name, 'openfaas-fn');
  });
});
