import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { normalizeDeployment } from '../../core/function-deployment.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

const uniqueName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** A gateway (auth off) over a process provider with `options`, on a loopback port. */
async function startGateway(
  stateDir: string,
  options: Partial<ConstructorParameters<typeof ProcessProvider>[0]> = {},
) {
  const provider = new ProcessProvider({ stateDir, drainDelayMs: 0, ...options });
  await provider.start();
  const gateway = buildGateway({ provider, config: readConfig({ basic_auth: 'false' }) });
  await gateway.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
  const close = async () => {
    await gateway.close();
    await provider.close();
  };
  return { provider, gateway, url, close };
}

type Running = Awaited<ReturnType<typeof startGateway>>;

const deploy = (running: Running, body: Record<string, unknown>, method = 'POST') =>
  running.gateway.inject({ method: method as 'POST', url: '/system/functions', payload: body });

const waitReady = (running: Running, name: string) =>
  waitFor(
    async () => {
      const res = await running.gateway.inject({ method: 'GET', url: `/system/function/${name}` });
      return (
        res.statusCode === 200 && res.json<{ availableReplicas: number }>().availableReplicas > 0
      );
    },
    { timeoutMs: 15_000, what: `${name} to be ready` },
  );

describe('deployment bodies: null fields and bad names', () => {
  let running: Running;
  before(async () => (running = await startGateway(makeTempDir('fnbus-guards-'))));
  after(() => running.close());

  it('takes null for every nullable field as absent, as OpenFaaS does', async () => {
    const name = uniqueName('nulls');
    const res = await deploy(running, {
      service: name,
      image: 'fnbus/cat',
      envProcess: 'cat',
      namespace: null,
      envVars: null,
      secrets: null,
      constraints: null,
      labels: null,
      annotations: null,
      limits: null,
      requests: { memory: null, cpu: '0.1' },
      readOnlyRootFilesystem: null,
      registryAuth: null,
      network: null,
    });
    assert.equal(res.statusCode, 202, res.body);
    await waitReady(running, name);
    const invoked = await request(`${running.url}/function/${name}`, { method: 'POST', body: 'x' });
    assert.equal(invoked.text, 'x');
    // An update with nulls too (PUT), then the function is described without them.
    const updated = await deploy(
      running,
      { service: name, image: 'fnbus/cat', envProcess: 'cat', secrets: null, envVars: null },
      'PUT',
    );
    assert.equal(updated.statusCode, 202, updated.body);
    const status = (
      await running.gateway.inject({ method: 'GET', url: `/system/function/${name}` })
    ).json<Record<string, unknown>>();
    assert.equal(status.secrets, undefined);
    assert.equal(status.envVars, undefined);
  });

  it('refuses NUL in envProcess, and env var names that are empty or hold "=", naming the field', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ envProcess: 'cat\u0000x' }, /envProcess/],
      [{ envVars: { 'D=E': 'x' } }, /envVars: "D=E"/],
      [{ envVars: { '': 'x' } }, /envVars: ""/],
      [{ envVars: { '1A': 'x' } }, /envVars: "1A"/],
      [{ envVars: { A: 'x\u0000y' } }, /envVars\.A/],
      [{ annotations: { '': 'x' } }, /annotations/],
      [{ labels: { 'a\nb': 'x' } }, /labels/],
      [{ labels: { a: 'x\u0000' } }, /labels\.a/],
    ];
    for (const [extra, field] of cases) {
      const name = uniqueName('bad');
      for (const method of ['POST', 'PUT']) {
        const res = await deploy(
          running,
          { service: name, image: 'fnbus/cat', envProcess: 'cat', ...extra },
          method,
        );
        assert.equal(res.statusCode, 400, `${method} ${JSON.stringify(extra)}: ${res.body}`);
        assert.match(res.body, field);
      }
      assert.equal(
        (await running.gateway.inject({ method: 'GET', url: `/system/function/${name}` }))
          .statusCode,
        404,
      );
    }
    // Names a process does take are fine: lower case, dots and dashes, as Kubernetes allows.
    const name = uniqueName('good');
    const res = await deploy(running, {
      service: name,
      image: 'fnbus/cat',
      envProcess: 'cat',
      envVars: { read_timeout: '5s', 'my.var': '1', 'MY-VAR': '2', _X: '' },
    });
    assert.equal(res.statusCode, 202, res.body);
  });

  it('refuses the same things in core, before any provider, and from the state folder at start', async () => {
    assert.throws(
      () =>
        normalizeDeployment(
          { service: uniqueName('p'), image: 'x', envProcess: 'a\u0000b' },
          'openfaas-fn',
        ),
      (error: Error & { status?: number }) =>
        error.status === 400 && /envProcess/.test(error.message),
    );
    // A record saved by an older hub with a NUL in it is listed, not ready, and answers at once.
    const stateDir = makeTempDir('fnbus-guards-state-');
    mkdirSync(join(stateDir, 'functions'));
    const spec = { service: 'nul', image: 'x', envProcess: 'cat\u0000', namespace: 'openfaas-fn' };
    writeFileSync(
      join(stateDir, 'functions', 'nul.json'),
      JSON.stringify({ spec, replicas: 1, createdAt: new Date().toISOString() }),
    );
    const other = await startGateway(stateDir);
    try {
      const listed = (await other.gateway.inject({ method: 'GET', url: '/system/functions' })).json<
        { name: string; availableReplicas: number }[]
      >();
      assert.deepEqual(
        listed.map((fn) => [fn.name, fn.availableReplicas]),
        [['nul', 0]],
      );
      const started = Date.now();
      const call = await request(`${other.url}/function/nul`, { method: 'POST', body: 'x' });
      assert.equal(call.status, 503);
      assert.equal(call.headers['x-openfaas-internal'], 'gateway');
      assert.match(call.text, /not started: invalid deployment: envProcess/);
      assert.ok(Date.now() - started < 5000, 'answered at once, not after a wait');
      assert.doesNotMatch(call.text, new RegExp(stateDir));
      // It can be removed.
      const removed = await other.gateway.inject({
        method: 'DELETE',
        url: '/system/functions',
        payload: { functionName: 'nul' },
      });
      assert.equal(removed.statusCode, 202);
    } finally {
      await other.close();
    }
  });
});

describe('a state folder that holds anything', () => {
  it('lets the provider start and the gateway answer /healthz', async () => {
    const notAFolder = makeTempDir('fnbus-junk-');
    writeFileSync(join(notAFolder, 'functions'), 'not a folder');
    const junk = makeTempDir('fnbus-junk-');
    mkdirSync(join(junk, 'functions'));
    writeFileSync(join(junk, 'functions', 'a.json'), '{not json');
    writeFileSync(
      join(junk, 'functions', 'b.json'),
      JSON.stringify({ spec: { service: 'b' }, replicas: -1 }),
    );
    writeFileSync(
      join(junk, 'functions', 'c.json'),
      JSON.stringify({ spec: { service: 'c', envVars: 'x', envProcess: 5 }, replicas: 1 }),
    );
    mkdirSync(join(junk, 'functions', 'd.json'));
    for (const stateDir of [notAFolder, junk]) {
      const running = await startGateway(stateDir);
      try {
        assert.equal(
          (await running.gateway.inject({ method: 'GET', url: '/healthz' })).statusCode,
          200,
        );
        const listed = (
          await running.gateway.inject({ method: 'GET', url: '/system/functions' })
        ).json<{ name: string; availableReplicas: number }[]>();
        assert.ok(listed.every((fn) => fn.availableReplicas === 0));
      } finally {
        await running.close();
      }
    }
  });
});

describe('deploy and remove of one name at the same time', () => {
  let running: Running;
  let stateDir: string;
  before(async () => {
    stateDir = makeTempDir('fnbus-race-');
    running = await startGateway(stateDir);
    await running.provider.secrets.create({ name: 'token', value: 's3cret' });
  });
  after(() => running.close());

  it('ends consistent: deployed and answering with its files, or gone; no 5xx, no path', async () => {
    const name = uniqueName('race');
    const body = {
      service: name,
      image: 'fnbus/secret',
      // Answers with its secret: the call proves the function's files are there.
      envProcess: `sh -c 'cat "$FNBUS_SECRETS_PATH/token"'`,
      secrets: ['token'],
    };
    for (let round = 0; round < 6; round++) {
      const answers = await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          i % 2 === 0
            ? deploy(running, body)
            : running.gateway.inject({
                method: 'DELETE',
                url: '/system/functions',
                payload: { functionName: name },
              }),
        ),
      );
      for (const answer of answers) {
        assert.ok(
          [202, 404, 409].includes(answer.statusCode),
          `${answer.statusCode}: ${answer.body}`,
        );
        assert.ok(!answer.body.includes(stateDir), `a path in: ${answer.body}`);
      }
      const status = await running.gateway.inject({
        method: 'GET',
        url: `/system/function/${name}`,
      });
      if (round % 2 === 1 && status.statusCode === 404) {
        assert.equal((await deploy(running, body)).statusCode, 202);
      }
      const now = await running.gateway.inject({ method: 'GET', url: `/system/function/${name}` });
      if (now.statusCode === 200) {
        await waitReady(running, name);
        const call = await request(`${running.url}/function/${name}`, { method: 'POST', body: '' });
        assert.equal(call.status, 200, call.text);
        assert.equal(call.text, 's3cret');
        assert.ok(existsSync(join(stateDir, 'functions', `${name}.json`)));
      } else {
        assert.equal(now.statusCode, 404);
        assert.ok(!existsSync(join(stateDir, 'functions', `${name}.json`)));
        assert.equal((await request(`${running.url}/function/${name}`)).status, 404);
      }
    }
  });
});

describe('caps on functions and replicas', () => {
  let running: Running;
  before(async () => {
    running = await startGateway(makeTempDir('fnbus-caps-'), {
      maxFunctions: 3,
      maxReplicas: 2,
      maxTotalReplicas: 3,
    });
  });
  after(() => running.close());

  it('answers 409 at max_functions and max_total_replicas, 400 past max_replicas_per_function', async () => {
    const names = ['cap-a', 'cap-b'];
    for (const name of names) {
      assert.equal(
        (await deploy(running, { service: name, image: 'x', envProcess: 'cat' })).statusCode,
        202,
      );
    }
    const scale = (name: string, replicas: number) =>
      running.gateway.inject({
        method: 'POST',
        url: `/system/scale-function/${name}`,
        payload: { serviceName: name, replicas },
      });
    const tooMany = await scale('cap-a', 3);
    assert.equal(tooMany.statusCode, 400);
    assert.match(tooMany.body, /max_replicas_per_function/);
    assert.equal((await scale('cap-a', 2)).statusCode, 202); // 3 of 3 now
    const third = await deploy(running, { service: 'cap-c', image: 'x', envProcess: 'cat' });
    assert.equal(third.statusCode, 409);
    assert.match(third.body, /max_total_replicas/);
    // At zero replicas it fits; a fourth function does not.
    const zero = { 'com.openfaas.scale.min': '0' };
    assert.equal(
      (await deploy(running, { service: 'cap-c', image: 'x', envProcess: 'cat', labels: zero }))
        .statusCode,
      202,
    );
    const fourth = await deploy(running, {
      service: 'cap-d',
      image: 'x',
      envProcess: 'cat',
      labels: zero,
    });
    assert.equal(fourth.statusCode, 409);
    assert.match(fourth.body, /max_functions/);
    assert.equal((await scale('cap-b', 2)).statusCode, 409);
    // A call to cap-c can not scale it from zero: 503 (not the operator's 409), quickly.
    const call = await request(`${running.url}/function/cap-c`, { method: 'POST', body: 'x' });
    assert.equal(call.status, 503);
    // Room made, it fits again.
    assert.equal((await scale('cap-a', 1)).statusCode, 202);
    assert.equal((await scale('cap-b', 2)).statusCode, 202);
  });

  it('brings back from the state folder what fits the caps; the rest is listed, not ready, until it fits', async () => {
    const stateDir = makeTempDir('fnbus-caps-state-');
    const first = await startGateway(stateDir);
    for (const name of ['keep-a', 'keep-b', 'keep-c']) {
      assert.equal(
        (await deploy(first, { service: name, image: 'x', envProcess: 'cat' })).statusCode,
        202,
      );
    }
    await first.close();
    const second = await startGateway(stateDir, { maxFunctions: 2 });
    try {
      const ready = () =>
        waitFor(
          async () => {
            const listed = (
              await second.gateway.inject({ method: 'GET', url: '/system/functions' })
            ).json<{ name: string; availableReplicas: number }[]>();
            const running = listed.filter((fn) => fn.availableReplicas > 0).map((fn) => fn.name);
            return running.length === 2 && listed.length === 3 && running;
          },
          { timeoutMs: 15_000, what: 'two of three functions ready' },
        );
      assert.deepEqual(await ready(), ['keep-a', 'keep-b']);
      const parked = await request(`${second.url}/function/keep-c`, { method: 'POST', body: 'x' });
      assert.equal(parked.status, 503);
      assert.match(parked.text, /max_functions/);
      const scale = () =>
        second.gateway.inject({
          method: 'POST',
          url: '/system/scale-function/keep-c',
          payload: { replicas: 1 },
        });
      assert.equal((await scale()).statusCode, 409);
      assert.equal(
        (await deploy(second, { service: 'keep-d', image: 'x', envProcess: 'cat' })).statusCode,
        409,
      );
      const removed = await second.gateway.inject({
        method: 'DELETE',
        url: '/system/functions',
        payload: { functionName: 'keep-a' },
      });
      assert.equal(removed.statusCode, 202);
      assert.equal((await scale()).statusCode, 202);
      await waitReady(second, 'keep-c');
      const call = await request(`${second.url}/function/keep-c`, { method: 'POST', body: 'back' });
      assert.equal(call.text, 'back');
    } finally {
      await second.close();
    }
  });
});
