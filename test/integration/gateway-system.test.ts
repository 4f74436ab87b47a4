import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../core/errors.js';
import type { LogMessage } from '../../core/log-types.js';
import type { Provider } from '../../core/provider.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { openRequest, request } from '../helpers/http.js';
import { baseProvider } from '../helpers/providers.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

const uniqueName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** The provider's methods, bound; `logs` records the signals it is given. */
function wrap(provider: ProcessProvider, signals: AbortSignal[] = []): Provider {
  return {
    ...baseProvider(provider),
    logs: (req, signal) => {
      signals.push(signal);
      return provider.logs(req, signal);
    },
    secrets: provider.secrets,
  };
}

const ndjson = (text: string) =>
  text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as LogMessage);

describe('gateway logs, secrets, metrics and OpenAPI over the process provider', () => {
  let provider: ProcessProvider;
  let gateway: ReturnType<typeof buildGateway>;
  let url: string;
  const signals: AbortSignal[] = [];

  before(async () => {
    provider = new ProcessProvider({ stateDir: makeTempDir('fnbus-gateway-system-') });
    await provider.start();
    gateway = buildGateway({
      provider: wrap(provider, signals),
      config: readConfig({ basic_auth: 'false' }),
    });
    await gateway.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await gateway.close();
    await provider.close();
  });

  const deployReady = async (service: string, extra: Record<string, unknown> = {}) => {
    const res = await gateway.inject({
      method: 'POST',
      url: '/system/functions',
      payload: { service, image: 'fnbus/cat:latest', envProcess: 'cat', ...extra },
    });
    assert.equal(res.statusCode, 202);
    await waitFor(
      async () =>
        (await gateway.inject({ method: 'GET', url: `/system/function/${service}` })).json<{
          availableReplicas?: number;
        }>().availableReplicas === 1,
      { timeoutMs: 15_000, what: `${service} to be ready` },
    );
  };

  it('serves logs as NDJSON: past lines, tail, follow until the caller leaves', async () => {
    const name = uniqueName('logs');
    await deployReady(name, {
      envProcess: `sh -c 'cat; echo called >&2'`,
      envVars: { combine_output: 'false' },
    });
    assert.equal(
      (await request(`${url}/function/${name}`, { method: 'POST', body: 'a' })).text,
      'a',
    );
    assert.equal(
      (await request(`${url}/function/${name}`, { method: 'POST', body: 'b' })).text,
      'b',
    );

    const called = await waitFor(
      async () => {
        const res = await request(`${url}/system/logs?name=${name}`);
        assert.equal(res.status, 200);
        assert.match(String(res.headers['content-type']), /^application\/x-ndjson/);
        const lines = ndjson(res.text).filter((line) => line.text.includes('called'));
        return lines.length >= 2 && lines;
      },
      { what: 'both calls to be logged' },
    );
    for (const line of called) {
      assert.equal(line.name, name);
      assert.equal(line.namespace, 'openfaas-fn');
      assert.ok(line.instance);
      assert.ok(!Number.isNaN(Date.parse(line.timestamp)));
    }

    const tail = await request(`${url}/system/logs?name=${name}&tail=1`);
    assert.equal(ndjson(tail.text).length, 1);
    const future = new Date(Date.now() + 60_000).toISOString();
    assert.equal(
      (await request(`${url}/system/logs?name=${name}&since=${encodeURIComponent(future)}`)).text,
      '',
    );
    const ofInstance = await request(
      `${url}/system/logs?name=${name}.openfaas-fn&instance=${called[0]!.instance}`,
    );
    assert.ok(ndjson(ofInstance.text).every((line) => line.instance === called[0]!.instance));

    // Follow: the answer starts at once, a later call's line arrives, leaving ends the stream.
    const before = signals.length;
    const follow = openRequest(`${url}/system/logs?name=${name}&follow=true&tail=0`, {
      method: 'GET',
    });
    follow.req.end();
    const res = await follow.responseStarted;
    assert.equal(res.statusCode, 200);
    let received = '';
    res.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    assert.equal(
      (await request(`${url}/function/${name}`, { method: 'POST', body: 'c' })).status,
      200,
    );
    await waitFor(() => ndjson(received).some((line) => line.text.includes('called')), {
      what: 'the followed line',
    });
    const signal = signals[before]!;
    assert.equal(signal.aborted, false);
    follow.req.destroy();
    await waitFor(() => signal.aborted, { what: "the provider's iterator to be aborted" });
  });

  it('refuses bad logs queries: 400 for tail, follow or since, 404 for an unknown function', async () => {
    const name = uniqueName('logq');
    await deployReady(name);
    for (const query of [
      'since=yesterday',
      'since=2024-01-01',
      'tail=1.5',
      'tail=x',
      'follow=maybe',
    ]) {
      const res = await gateway.inject({
        method: 'GET',
        url: `/system/logs?name=${name}&${query}`,
      });
      assert.equal(res.statusCode, 400, query);
      assert.match(res.body, new RegExp(query.split('=')[0]!), query);
    }
    assert.equal((await gateway.inject({ method: 'GET', url: '/system/logs' })).statusCode, 400);
    const since = await gateway.inject({
      method: 'GET',
      url: `/system/logs?name=${name}&since=2024-01-01T00:00:00Z`,
    });
    assert.equal(since.statusCode, 200);
    const unknown = await gateway.inject({ method: 'GET', url: '/system/logs?name=no-such-fn' });
    assert.equal(unknown.statusCode, 404);
  });

  it('creates, lists, updates and removes secrets, with 409, 404 and 400', async () => {
    const name = uniqueName('secret');
    const secrets = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', payload?: object) =>
      gateway.inject({ method, url: '/system/secrets', ...(payload ? { payload } : {}) });

    assert.equal((await secrets('POST', { name, value: 's3cret' })).statusCode, 201);
    assert.equal((await secrets('POST', { name, value: 'again' })).statusCode, 409);
    const listed = (await secrets('GET')).json<{ name: string; value?: string }[]>();
    const mine = listed.find((secret) => secret.name === name);
    assert.ok(mine);
    assert.equal(mine.value, undefined);

    const raw = Buffer.from([0, 1, 2, 255]).toString('base64');
    assert.equal((await secrets('PUT', { name, rawValue: raw })).statusCode, 200);
    assert.equal((await secrets('PUT', { name: uniqueName('ghost'), value: 'x' })).statusCode, 404);

    const badName = await secrets('POST', { name: 'Bad_Name', value: 'x' });
    assert.equal(badName.statusCode, 400);
    assert.match(badName.body, /name/);
    assert.equal(
      (await secrets('POST', { name: uniqueName('b'), rawValue: '%%' })).statusCode,
      400,
    );
    assert.equal((await secrets('POST', { name: uniqueName('n') })).statusCode, 400);

    assert.equal((await secrets('DELETE', { name })).statusCode, 202);
    assert.equal((await secrets('DELETE', { name })).statusCode, 404);
    assert.ok(!(await secrets('GET')).json<{ name: string }[]>().some((s) => s.name === name));
  });

  it('serves Prometheus metrics with OpenFaaS names, and invocationCount from them', async () => {
    const name = uniqueName('metric');
    await deployReady(name);
    for (let i = 0; i < 3; i += 1) {
      assert.equal(
        (await request(`${url}/function/${name}`, { method: 'POST', body: `${i}` })).status,
        200,
      );
    }
    const full = `${name}.openfaas-fn`;
    const res = await request(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    const text = res.text;
    assert.ok(
      text.includes(`gateway_function_invocation_total{function_name="${full}",code="200"} 3`),
      text,
    );
    assert.ok(text.includes(`gateway_function_invocation_started{function_name="${full}"} 3`));
    assert.ok(
      text.includes(`gateway_functions_seconds_count{function_name="${full}",code="200"} 3`),
    );
    assert.match(
      text,
      new RegExp(
        `gateway_functions_seconds_bucket\\{le="0.005",function_name="${full}",code="200"\\}`,
      ),
    );
    assert.ok(text.includes(`gateway_service_count{function_name="${full}"} 1`));

    const listed = (await gateway.inject({ method: 'GET', url: '/system/functions' })).json<
      { name: string; invocationCount: number }[]
    >();
    assert.equal(listed.find((fn) => fn.name === name)?.invocationCount, 3);
  });

  it('serves its OpenAPI document, generated from the routes', async () => {
    const res = await gateway.inject({ method: 'GET', url: '/system/openapi.json' });
    assert.equal(res.statusCode, 200);
    const doc = res.json<{
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          {
            requestBody?: { content: Record<string, { schema: { required?: string[] } }> };
            parameters?: { name: string }[];
          }
        >
      >;
    }>();
    assert.equal(doc.openapi, '3.1.0');
    for (const path of [
      '/system/functions',
      '/system/function/{name}',
      '/system/scale-function/{name}',
      '/system/secrets',
      '/system/logs',
      '/system/info',
      '/function/{name}',
      '/function/{name}/{path}',
      '/metrics',
    ]) {
      assert.ok(doc.paths[path], path);
    }
    assert.deepEqual(Object.keys(doc.paths['/system/functions']!).sort(), [
      'delete',
      'get',
      'post',
      'put',
    ]);
    assert.deepEqual(
      doc.paths['/system/functions']!.post!.requestBody!.content['application/json']!.schema
        .required,
      ['service', 'image'],
    );
    assert.ok(doc.paths['/system/logs']!.get!.parameters!.some((p) => p.name === 'since'));
  });

  it('answers 501 for logs and secrets when the provider has none', async () => {
    const bare = wrap(provider);
    delete bare.logs;
    delete bare.secrets;
    const plain = buildGateway({ provider: bare, config: readConfig({ basic_auth: 'false' }) });
    try {
      const name = uniqueName('bare');
      await deployReady(name);
      const logs = await plain.inject({ method: 'GET', url: `/system/logs?name=${name}` });
      assert.equal(logs.statusCode, 501);
      assert.equal((await plain.inject({ method: 'GET', url: '/system/secrets' })).statusCode, 501);
      const create = await plain.inject({
        method: 'POST',
        url: '/system/secrets',
        payload: { name: 'x', value: 'y' },
      });
      assert.equal(create.statusCode, 501);
    } finally {
      await plain.close();
    }
  });
});

describe('gateway basic auth', () => {
  let provider: ProcessProvider;
  let gateway: ReturnType<typeof buildGateway>;
  let url: string;
  const basic = (user: string, password: string) =>
    `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

  before(async () => {
    const secrets = makeTempDir('fnbus-gateway-auth-');
    writeFileSync(join(secrets, 'basic-auth-user'), 'admin\n');
    writeFileSync(join(secrets, 'basic-auth-password'), '  open sesame \n');
    provider = new ProcessProvider({ stateDir: makeTempDir('fnbus-gateway-auth-state-') });
    await provider.start();
    gateway = buildGateway({
      provider,
      config: readConfig({ basic_auth: 'true', secret_mount_path: secrets }),
      // The files win over these.
      credentials: { user: 'env-user', password: 'env-password' },
    });
    await gateway.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await gateway.close();
    await provider.close();
  });

  it('guards /system/* with credentials from secret_mount_path, trimmed', async () => {
    const none = await request(`${url}/system/functions`);
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Basic realm="Restricted"');
    assert.equal(none.text.trim(), 'invalid credentials');

    for (const authorization of [
      basic('admin', 'wrong'),
      basic('admin', 'open sesame '),
      basic('Admin', 'open sesame'),
      basic('env-user', 'env-password'),
      'Bearer x',
      'Basic !!!',
    ]) {
      const res = await request(`${url}/system/info`, { headers: { authorization } });
      assert.equal(res.status, 401, authorization);
    }
    for (const path of [
      '/system/functions',
      '/system/secrets',
      '/system/openapi.json',
      '/system/logs?name=x',
      '/system/nope',
    ]) {
      assert.equal((await request(`${url}${path}`)).status, 401, path);
    }
    const right = await request(`${url}/system/functions`, {
      headers: { authorization: basic('admin', 'open sesame') },
    });
    assert.equal(right.status, 200);
  });

  it('leaves function routes, /healthz and /metrics open', async () => {
    const name = uniqueName('open');
    const authorization = basic('admin', 'open sesame');
    const deployed = await request(`${url}/system/functions`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json' },
      body: JSON.stringify({ service: name, image: 'fnbus/cat:latest', envProcess: 'cat' }),
    });
    assert.equal(deployed.status, 202);
    const res = await request(`${url}/function/${name}`, { method: 'POST', body: 'hi' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'hi');
    assert.equal((await request(`${url}/healthz`)).status, 200);
    assert.equal((await request(`${url}/metrics`)).status, 200);
  });

  it('takes credentials from the caller when the files are absent, and refuses to start with none', () => {
    const empty = makeTempDir('fnbus-gateway-noauth-');
    const config = readConfig({ basic_auth: 'true', secret_mount_path: empty });
    const fromEnv = buildGateway({ provider, config, credentials: { user: 'u', password: 'p' } });
    void fromEnv.close();
    assert.throws(
      () => buildGateway({ provider, config }),
      (error: unknown) =>
        error instanceof ConfigError &&
        /basic-auth-user/.test(error.message) &&
        error.message.includes(empty),
    );
    writeFileSync(join(empty, 'basic-auth-user'), 'admin');
    assert.throws(() => buildGateway({ provider, config }), /password is missing/);
  });

  it('checks env-provided credentials', async () => {
    const empty = makeTempDir('fnbus-gateway-envauth-');
    const app = buildGateway({
      provider,
      config: readConfig({ basic_auth: 'true', secret_mount_path: empty }),
      credentials: { user: 'u', password: 'p' },
    });
    try {
      const ok = await app.inject({
        method: 'GET',
        url: '/system/info',
        headers: { authorization: basic('u', 'p') },
      });
      assert.equal(ok.statusCode, 200);
      const bad = await app.inject({
        method: 'GET',
        url: '/system/info',
        headers: { authorization: basic('u', 'q') },
      });
      assert.equal(bad.statusCode, 401);
    } finally {
      await app.close();
    }
  });
});
