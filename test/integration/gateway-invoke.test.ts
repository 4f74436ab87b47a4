import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { request } from '../helpers/http.js';
import { baseProvider } from '../helpers/providers.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, fprocess, makeTempDir } from '../helpers/watchdog.js';

const uniqueName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

interface Echo {
  pid: number;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

const paths = [
  { path: 'one hop (replicas in the hub)', remote: false },
  { path: 'two hops (a remote replica, proxied)', remote: true },
];

for (const { path, remote } of paths) {
  describe(`gateway invoke, ${path}`, () => {
    let provider: ProcessProvider;
    let gateway: ReturnType<typeof buildGateway>;
    let url: string;
    const server = uniqueName('server');

    const deploy = (name: string, envVars: Record<string, string> = {}) =>
      provider.deploy({
        service: name,
        image: 'fnbus/node-http-server',
        envProcess: fprocess('node', fixture('node-http-server.cjs')),
        envVars: { mode: 'http', ...envVars },
      });
    const ready = (name: string, replicas: number) =>
      waitFor(async () => (await provider.get(name))?.availableReplicas === replicas, {
        timeoutMs: 15_000,
        what: `${name} to have ${replicas} ready replicas`,
      });

    before(async () => {
      // In the hub a retired replica needs no grace (a call is handed over in the same tick it
      // is resolved); a proxied caller may still hold its URL for a moment.
      provider = new ProcessProvider({
        stateDir: makeTempDir('fnbus-invoke-'),
        drainDelayMs: remote ? 500 : 0,
      });
      await provider.start();
      gateway = buildGateway({
        // Without resolveLocal, the gateway proxies to the replica's loopback port, as to a container.
        provider: remote ? baseProvider(provider) : provider,
        ...(remote
          ? {}
          : { resolveLocal: (name, namespace) => provider.resolveLocal(name, namespace) }),
        config: readConfig({
          upstream_timeout: '1s',
          scale_from_zero: 'false',
          basic_auth: 'false',
        }),
      });
      await gateway.listen({ port: 0, host: '127.0.0.1' });
      url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
      await deploy(server);
      await provider.scale(server, 2);
      await ready(server, 2);
    });
    after(async () => {
      await gateway.close();
      await provider.close();
    });

    it('passes method, path, query, headers, body and status through, with call headers', async () => {
      const res = await request(`${url}/function/${server}/some/path?a=1&b=two`, {
        method: 'PATCH',
        body: 'the body',
        headers: { 'X-Test': 'yes', 'X-Call-Id': 'caller-chosen', 'Content-Type': 'text/plain' },
      });
      assert.equal(res.status, 201);
      assert.equal(res.headers['x-echo'], 'yes', "the function's own header");
      assert.equal(res.headers['x-call-id'], 'caller-chosen');
      assert.match(String(res.headers['x-start-time']), /^\d{19}$/);
      assert.match(String(res.headers['x-duration-seconds']), /^\d+\.\d{6}$/);
      const echo = JSON.parse(res.text) as Echo;
      assert.equal(echo.method, 'PATCH');
      assert.equal(echo.url, '/some/path?a=1&b=two');
      assert.equal(echo.body, 'the body');
      assert.equal(echo.headers['x-test'], 'yes');
      assert.equal(echo.headers['x-call-id'], 'caller-chosen');
      assert.match(echo.headers['x-start-time'] ?? '', /^\d{19}$/);
      assert.ok(echo.headers['x-forwarded-host']?.startsWith('127.0.0.1:'));

      const generated = await request(`${url}/function/${server}.openfaas-fn`);
      const id = String(generated.headers['x-call-id']);
      assert.match(id, /^[0-9a-f-]{36}$/);
      assert.equal((JSON.parse(generated.text) as Echo).headers['x-call-id'], id);

      const teapot = await request(`${url}/function/${server}/status/418`);
      assert.equal(teapot.status, 418);
      assert.equal(teapot.headers['x-from'], 'function');
    });

    it('passes the path on raw: an encoded ? (%3F) stays in the path, never the query', async () => {
      const res = await request(`${url}/function/${server}/a%3Fb/c%20d%2Fe?x=1`);
      assert.equal((JSON.parse(res.text) as Echo).url, '/a%3Fb/c%20d%2Fe?x=1');
      const envFn = uniqueName('env');
      await provider.deploy({
        service: envFn,
        image: 'fnbus/env-dump',
        envProcess: fprocess('sh', fixture('env-dump.sh')),
      });
      await ready(envFn, 1);
      const env = (await request(`${url}/function/${envFn}/a%3Fb`)).text.split('\n');
      assert.ok(env.includes('Http_Path=/a%3Fb'), env.filter((l) => l.startsWith('Http_')).join());
      assert.ok(!env.some((line) => line.startsWith('Http_Query=')), 'no query');
      await provider.remove(envFn);
    });

    it('streams a large body both ways', async () => {
      const body = randomBytes(8 * 1024 * 1024);
      const res = await request(`${url}/function/${server}/stream-echo`, {
        method: 'POST',
        body,
        timeoutMs: 20_000,
      });
      assert.equal(res.status, 200);
      const digest = (data: Buffer) => createHash('sha256').update(data).digest('hex');
      assert.equal(digest(res.body), digest(body));
    });

    it('spreads calls across the ready replicas', async () => {
      const pids = new Set<number>();
      for (let i = 0; i < 10; i++) {
        const res = await request(`${url}/function/${server}`, { method: 'POST', body: 'x' });
        pids.add((JSON.parse(res.text) as Echo).pid);
      }
      assert.equal(pids.size, 2, 'both replicas answered');
    });

    it('answers 502 past upstream_timeout, and when the function process dies mid-call', async () => {
      const slow = await request(`${url}/function/${server}?ms=3000`, {
        method: 'POST',
        body: 'x',
      });
      assert.equal(slow.status, 502);
      assert.ok(slow.headers['x-openfaas-internal']);

      const crashing = uniqueName('crash');
      await deploy(crashing);
      await ready(crashing, 1);
      const crashed = await request(`${url}/function/${crashing}/crash`, {
        method: 'POST',
        body: 'x',
      });
      assert.equal(crashed.status, 502);
      await provider.remove(crashing);
    });

    it('keeps answering while a function is updated: no call dropped', async () => {
      const name = uniqueName('rolling');
      const version = (text: string) => ({
        service: name,
        image: 'fnbus/echo',
        envProcess: `echo ${text}`,
      });
      await provider.deploy(version('v1'));
      await provider.scale(name, 2);
      await ready(name, 2);
      const answers: string[] = [];
      let updating = true;
      const loop = (async () => {
        while (updating || answers.at(-1) !== 'v2') {
          const res = await request(`${url}/function/${name}`, { method: 'POST', body: 'x' });
          answers.push(res.status === 200 ? res.text.trim() : `status ${res.status}`);
        }
      })();
      await waitFor(() => answers.length >= 5, { what: 'calls before the update' });
      await provider.update(version('v2'));
      await waitFor(
        async () =>
          (await provider.get(name))?.availableReplicas === 2 &&
          provider.instances(name).every((replica) => replica.generation === 2),
        { timeoutMs: 15_000, what: 'the update to roll out' },
      );
      const count = answers.length;
      await waitFor(() => answers.length >= count + 10, { what: 'calls after the update' });
      updating = false;
      await loop;
      assert.deepEqual(
        answers.filter((answer) => answer !== 'v1' && answer !== 'v2'),
        [],
        'every call answered by one version or the other',
      );
      assert.equal(answers.at(-1), 'v2');
      await provider.remove(name);
    });

    it('answers 404 for an unknown function and 503 when no replica is ready', async () => {
      const unknown = await request(`${url}/function/${uniqueName('nobody')}`);
      assert.equal(unknown.status, 404);
      assert.match(unknown.text, /function not found/);

      const idle = uniqueName('idle');
      await deploy(idle);
      await provider.scale(idle, 0);
      await ready(idle, 0);
      const res = await request(`${url}/function/${idle}`, { method: 'POST', body: 'x' });
      assert.equal(res.status, 503);
      assert.match(res.text, /no replica/);
      await provider.remove(idle);
    });

    it('counts calls by function and status in its metrics', async () => {
      await request(`${url}/function/${server}/status/503`);
      const metrics = await request(`${url}/metrics`);
      const line = metrics.text
        .split('\n')
        .find(
          (text) =>
            text.startsWith('gateway_function_invocation_total{') &&
            text.includes(`function_name="${server}.openfaas-fn"`) &&
            text.includes('code="503"'),
        );
      assert.ok(line, metrics.text);
      assert.match(line, / 1$/);
    });
  });
}
