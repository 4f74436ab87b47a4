import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BadGatewayError,
  ConfigError,
  NotFoundError,
  NotImplementedError,
  UnavailableError,
} from '../../core/errors.js';
import type { FunctionDeployment } from '../../core/function-types.js';
import { silentLogger } from '../../core/logger.js';
import { FaasProvider } from '../../deploy/faas-provider/faas-provider.js';
import { openProvider } from '../../deploy/open-provider.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { request } from '../helpers/http.js';
import { baseProvider } from '../helpers/providers.js';
import { makeTempDir } from '../helpers/watchdog.js';
import { providerContract, randomName } from './provider-contract.js';

const credentials = { user: 'admin', password: 'remote-provider-secret' };

function echoFunction(name: string): FunctionDeployment {
  return {
    service: name,
    image: 'ghcr.io/openfaas/alpine:latest',
    envProcess: 'cat',
    envVars: { log_callid: 'true' },
  };
}

/**
 * fnbus's own gateway over a process provider, with basic auth on: the "remote provider" the
 * FaasProvider talks to, standing in for faas-netes or faasd (same routes, same shapes).
 */
async function startRemote(bare = false) {
  const process = new ProcessProvider({
    stateDir: makeTempDir('fnbus-remote-'),
    drainDelayMs: 200,
  });
  await process.start();
  const gateway = buildGateway({
    provider: bare ? baseProvider(process) : process,
    config: readConfig({ secret_mount_path: makeTempDir('fnbus-no-secrets-') }),
    credentials,
  });
  await gateway.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
  return {
    url,
    close: async () => {
      await gateway.close();
      await process.close();
    },
  };
}

providerContract('FaasProvider (over fnbus gateway)', async () => {
  const remote = await startRemote();
  const provider = new FaasProvider({ url: remote.url, credentials });
  return {
    provider,
    echoFunction,
    close: async () => {
      await provider.close();
      await remote.close();
    },
  };
});

describe('FaasProvider', () => {
  let remote: Awaited<ReturnType<typeof startRemote>>;
  let bare: Awaited<ReturnType<typeof startRemote>>;
  let silent: Server;
  let silentUrl: string;
  before(async () => {
    [remote, bare] = await Promise.all([startRemote(), startRemote(true)]);
    // Accepts connections and never answers.
    silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  });
  after(async () => {
    silent.close();
    await Promise.all([remote.close(), bare.close()]);
  });

  it('takes credentials from the URL, and never shows them', async () => {
    const withUser = new URL(remote.url);
    withUser.username = credentials.user;
    withUser.password = credentials.password;
    const provider = new FaasProvider({ url: withUser.href });
    try {
      assert.equal(provider.url.includes(credentials.password), false);
      assert.ok(Array.isArray(await provider.list()));
    } finally {
      await provider.close();
    }
  });

  it("openProvider takes the credentials from OpenFaaS's secret files, and names what is missing", async () => {
    const dir = makeTempDir('fnbus-provider-secrets-');
    writeFileSync(join(dir, 'basic-auth-user'), `${credentials.user}\n`);
    writeFileSync(join(dir, 'basic-auth-password'), `${credentials.password}\n`);
    const parts = {
      stateDir: makeTempDir('fnbus-unused-'),
      namespace: 'openfaas-fn',
      logger: silentLogger,
    };
    const opened = await openProvider(remote.url, {
      ...parts,
      env: { FNBUS_PROVIDER_SECRET_MOUNT_PATH: dir },
    });
    try {
      assert.equal(opened.process, undefined);
      assert.ok(Array.isArray(await opened.provider.list()));
    } finally {
      await opened.close();
    }
    const empty = makeTempDir('fnbus-provider-no-secrets-');
    const error = await openProvider(remote.url, {
      ...parts,
      env: { FNBUS_PROVIDER_SECRET_MOUNT_PATH: empty },
    }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof ConfigError, String(error));
    assert.match(error.message, /cannot read basic-auth-user \(ENOENT\)/);
    assert.equal(error.message.includes(empty), false);
  });

  it('answers BadGatewayError when the provider refuses its credentials', async () => {
    const provider = new FaasProvider({
      url: remote.url,
      credentials: { user: 'admin', password: 'wrong' },
    });
    try {
      const error = await provider.list().then(
        () => undefined,
        (caught: unknown) => caught,
      );
      assert.ok(error instanceof BadGatewayError, String(error));
      assert.equal(error.message.includes('wrong'), false);
    } finally {
      await provider.close();
    }
  });

  it('gives up within its timeout on a provider that never answers', async () => {
    const provider = new FaasProvider({ url: silentUrl, timeoutMs: 300 });
    try {
      const started = Date.now();
      await assert.rejects(provider.list(), UnavailableError);
      assert.ok(Date.now() - started < 3000);
      // The caller's signal ends a logs call too.
      const controller = new AbortController();
      const logs = provider.logs({ name: 'x', follow: true }, controller.signal);
      const next = logs[Symbol.asyncIterator]().next();
      controller.abort();
      assert.equal((await next).done, true);
    } finally {
      await provider.close();
    }
  });

  it('bounds every call, answer included, on a provider that never answers or stops halfway', async () => {
    // Credentials in the URL: no error may show them.
    const silentWithUser = new URL(silentUrl);
    silentWithUser.username = 'admin';
    silentWithUser.password = 'never-shown';
    const provider = new FaasProvider({ url: silentWithUser.href, timeoutMs: 300 });
    // Answers the head and the start of a body, then nothing.
    const stalling = createServer((socket) =>
      socket.once('data', () =>
        socket.write(
          'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[',
        ),
      ),
    );
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
    const halfway = new FaasProvider({
      url: `http://127.0.0.1:${(stalling.address() as AddressInfo).port}`,
      timeoutMs: 300,
    });
    try {
      const spec = echoFunction('never');
      const firstLine = (follow: boolean) => {
        const lines = provider.logs({ name: 'x', follow }, new AbortController().signal);
        return lines[Symbol.asyncIterator]().next();
      };
      const calls: [string, () => Promise<unknown>][] = [
        ['info', () => provider.info()],
        ['namespaces', () => provider.namespaces()],
        ['list', () => provider.list()],
        ['get', () => provider.get('never')],
        ['deploy', () => provider.deploy(spec)],
        ['update', () => provider.update(spec)],
        ['remove', () => provider.remove('never')],
        ['scale', () => provider.scale('never', 1)],
        ['resolve', () => provider.resolve('never')],
        ['secrets.list', () => provider.secrets.list()],
        ['secrets.create', () => provider.secrets.create({ name: 's', value: 'v' })],
        ['secrets.update', () => provider.secrets.update({ name: 's', value: 'v' })],
        ['secrets.remove', () => provider.secrets.remove('s')],
        ['namespaceStore.get', () => provider.namespaceStore.get('ns1')],
        ['namespaceStore.create', () => provider.namespaceStore.create({ name: 'ns1' })],
        ['namespaceStore.update', () => provider.namespaceStore.update({ name: 'ns1' })],
        ['namespaceStore.remove', () => provider.namespaceStore.remove('ns1')],
        ['logs', () => firstLine(false)],
        ['logs (follow)', () => firstLine(true)],
        ['list, stopped halfway', () => halfway.list()],
      ];
      const started = Date.now();
      const outcomes = await Promise.all(
        calls.map(([what, call]) =>
          call().then(
            () => assert.fail(`${what} resolved`),
            (error: unknown) => [what, error, Date.now() - started] as const,
          ),
        ),
      );
      for (const [what, error, tookMs] of outcomes) {
        assert.ok(error instanceof UnavailableError, `${what}: ${String(error)}`);
        assert.match(error.message, /no answer within 300 ms/, what);
        assert.equal(
          `${error.message} ${String(error.cause)}`.includes('never-shown'),
          false,
          what,
        );
        assert.ok(tookMs < 3000, `${what} took ${tookMs} ms`);
      }
    } finally {
      stalling.close();
      await Promise.all([provider.close(), halfway.close()]);
    }
  });

  it("stops a call when the caller's signal aborts, before or during it", async () => {
    const provider = new FaasProvider({ url: silentUrl, timeoutMs: 60_000 });
    try {
      const started = Date.now();
      const caller = new AbortController();
      const calls = [
        provider.list(undefined, caller.signal),
        provider.get('fn', undefined, caller.signal),
        provider.scale('fn', 1, undefined, caller.signal),
        provider.resolve('fn', undefined, caller.signal),
        provider.deploy(echoFunction('fn'), caller.signal),
        provider.secrets.list(undefined, caller.signal),
        provider.namespaceStore.get('ns1', caller.signal),
      ].map((call) =>
        call.then(
          () => undefined,
          (error: unknown) => error,
        ),
      );
      setTimeout(() => caller.abort(), 100);
      for (const error of await Promise.all(calls)) {
        assert.ok(error instanceof UnavailableError, String(error));
        assert.match(error.message, /was cancelled/);
      }
      await assert.rejects(provider.info(AbortSignal.abort()), /was cancelled/);
      assert.ok(Date.now() - started < 5000);
    } finally {
      await provider.close();
    }
  });

  it('answers UnavailableError for a provider that is not there', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    const provider = new FaasProvider({ url: `http://127.0.0.1:${port}` });
    try {
      await assert.rejects(provider.info(), UnavailableError);
    } finally {
      await provider.close();
    }
  });

  it('passes on a 501 for what the remote lacks, and the gateway in front answers 501', async () => {
    const provider = new FaasProvider({ url: bare.url, credentials });
    const front = buildGateway({ provider, config: readConfig({ basic_auth: 'false' }) });
    try {
      await assert.rejects(provider.secrets.list(), NotImplementedError);
      await assert.rejects(provider.namespaceStore.get('openfaas-fn'), NotImplementedError);
      const logs = provider.logs({ name: 'x', follow: false }, AbortSignal.timeout(5000));
      await assert.rejects(logs[Symbol.asyncIterator]().next(), NotImplementedError);
      for (const url of ['/system/secrets', '/system/namespace/ns1']) {
        const answer = await front.inject({ method: 'GET', url });
        assert.equal(answer.statusCode, 501, `${url}: ${answer.body}`);
      }
    } finally {
      await front.close();
      await provider.close();
    }
  });

  it('fronts the remote: a gateway over it deploys, invokes and answers 404 as the remote does', async () => {
    const provider = new FaasProvider({ url: remote.url, credentials });
    const front = buildGateway({ provider, config: readConfig({ basic_auth: 'false' }) });
    await front.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(front.server.address() as AddressInfo).port}`;
    try {
      const fn = randomName();
      const deployed = await request(`${url}/system/functions`, {
        method: 'POST',
        body: JSON.stringify(echoFunction(fn)),
      });
      assert.equal(deployed.status, 202, deployed.text);
      // Held until a replica is ready (scale from zero's wait), then proxied to /function there.
      const called = await request(`${url}/function/${fn}/some/path?q=1`, {
        method: 'POST',
        body: 'through two gateways',
      });
      assert.equal(called.status, 200, called.text);
      assert.equal(called.text, 'through two gateways');
      const missing = await request(`${url}/system/function/${randomName('missing')}`);
      assert.equal(missing.status, 404);
      await assert.rejects(provider.resolve(randomName('missing')), NotFoundError);
      // OpenFaaS's certifier calls a function with no name: not found, never the remote's 400.
      for (const path of ['/function/.openfaas-fn', `/function/${randomName('missing')}`]) {
        const unknown = await request(`${url}${path}`, { method: 'POST', body: 'x' });
        assert.equal(unknown.status, 404, `${path}: ${unknown.text}`);
      }
      const info = JSON.parse((await request(`${url}/system/info`)).text) as {
        provider: { provider: string };
      };
      assert.equal(info.provider.provider, 'fnbus-process');
    } finally {
      await front.close();
      await provider.close();
    }
  });
});
