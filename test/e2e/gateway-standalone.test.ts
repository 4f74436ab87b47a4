import assert from 'node:assert/strict';
import { once } from 'node:events';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli, startCli, type RunningCli } from '../helpers/cli.js';
import { freePort, request } from '../helpers/http.js';
import {
  deployProcess,
  hubCliEnv,
  hubCredentials,
  ready,
  startHub,
  stopHub,
  systemAuth,
} from '../helpers/hub.js';
import { startRedis } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir, repoRoot } from '../helpers/watchdog.js';

/** SIGTERM, and the process must exit 0. */
async function stopCli(running: RunningCli): Promise<void> {
  if (running.child.exitCode !== null) return;
  const exited = once(running.child, 'exit');
  running.child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0, running.stderr() + running.stdout());
}

describe('fnbus gateway', () => {
  it('fronts another hub over HTTP: deploys, lists, invokes sync and async (with fnbus queue-worker)', async (t) => {
    const dir = makeTempDir('fnbus-gateway-');
    // Stopped last started first: a worker outlives no queue, a gateway no provider.
    const cleanups: (() => Promise<void>)[] = [];
    t.after(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    // The "remote provider": an fnbus hub over its process provider, as faas-netes would be.
    const remote = await startHub(['--connectors', 'none'], join(dir, 'remote'));
    cleanups.push(() => stopHub(remote.hub));

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const gateway = startCli(
      [
        'gateway',
        '--provider',
        remote.url,
        '--queue',
        redis.url,
        '--port',
        String(port),
        '--state-dir',
        join(dir, 'front'),
      ],
      {
        ...hubCliEnv,
        FNBUS_PROVIDER_USERNAME: hubCredentials.user,
        FNBUS_PROVIDER_PASSWORD: hubCredentials.password,
      },
    );
    cleanups.push(() => stopCli(gateway));
    await waitFor(
      () => gateway.stdout().includes('fnbus gateway is up') || gateway.child.exitCode !== null,
      { timeoutMs: 20_000, what: 'fnbus gateway' },
    );
    assert.equal(gateway.child.exitCode, null, gateway.stderr() + gateway.stdout());
    assert.equal(gateway.stdout().includes(hubCredentials.password), false);

    const worker = startCli(['queue-worker', '--queue', redis.url, '--gateway', url], {
      ...hubCliEnv,
      metrics_port: String(await freePort()),
    });
    cleanups.push(() => stopCli(worker));

    // Deployed through the standalone gateway, it lives on the remote hub.
    await deployProcess(url, 'echo', 'cat', {});
    await ready(url, 'echo');
    const onRemote = await request(`${remote.url}/system/function/echo`, { headers: systemAuth });
    assert.equal(onRemote.status, 200, onRemote.text);

    const env = { FNBUS_GATEWAY: url, ...hubCliEnv };
    const listed = await runCli(['list'], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^echo\s/m);

    const sync = await request(`${url}/function/echo`, { method: 'POST', body: 'sync hello' });
    assert.equal(sync.status, 200, sync.text);
    assert.equal(sync.text, 'sync hello');

    const queued = await request(`${url}/async-function/echo`, {
      method: 'POST',
      body: 'async hello',
    });
    assert.equal(queued.status, 202, queued.text);
    const callId = String(queued.headers['x-call-id']);
    await waitFor(async () => (await runCli(['call', callId], env)).stdout.includes('succeeded'), {
      timeoutMs: 15_000,
      what: 'the async call to succeed',
    });

    const removed = await runCli(['remove', 'echo'], env);
    assert.equal(removed.code, 0, removed.stderr);
    const gone = await request(`${remote.url}/system/function/echo`, { headers: systemAuth });
    assert.equal(gone.status, 404);
  });

  it('runs a stack’s template function on its own process provider, by image name', async (t) => {
    const dir = makeTempDir('fnbus-gateway-images-');
    cpSync(join(repoRoot, 'templates', 'node', 'function'), join(dir, 'greet'), {
      recursive: true,
    });
    const stackFile = join(dir, 'stack.yml');
    writeFileSync(
      stackFile,
      'version: 1.0\nprovider:\n  name: openfaas\nfunctions:\n  greet:\n    lang: node\n    handler: ./greet\n    image: example/greet-gw:latest\n',
    );
    // This machine's image store, shared by the gateway and the CLI that builds into it.
    const images = { FNBUS_IMAGES: join(dir, 'images') };
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const gateway = startCli(
      ['gateway', '--port', String(port), '--state-dir', join(dir, 'state')],
      { ...hubCliEnv, ...images },
    );
    t.after(() => stopCli(gateway));
    await waitFor(
      () => gateway.stdout().includes('fnbus gateway is up') || gateway.child.exitCode !== null,
      { timeoutMs: 20_000, what: 'fnbus gateway' },
    );
    assert.equal(gateway.child.exitCode, null, gateway.stderr() + gateway.stdout());
    const env = { FNBUS_GATEWAY: url, ...hubCliEnv, ...images };
    const deployed = await runCli(['deploy', '-f', stackFile], env);
    assert.equal(deployed.code, 0, deployed.stderr);
    await ready(url, 'greet');
    const answer = await request(`${url}/function/greet`, { method: 'POST', body: 'gw' });
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(JSON.parse(answer.text), { status: 'Received input: "gw"' });
  });

  it('refuses a bad provider URL, read with every setting: one line for it, exit 1, never its credentials', async () => {
    const stateDir = makeTempDir('fnbus-gateway-bad-');
    for (const [provider, said] of [
      ['swarm://manager:2377', /swarm:\/\/ is not available yet/],
      ['kubernetes://cluster', /kubernetes:\/\/ takes no host or path/],
      [
        'ftp://user:hunter2@example.com/',
        /use process \(the default\), kubernetes:\/\/ .*http:\/\/ or https:\/\//,
      ],
      ['not a url user:hunter2@', /is not a URL/],
    ] as const) {
      const result = await runCli(
        ['gateway', '--provider', provider, '--port', '0', '--state-dir', stateDir],
        hubCliEnv,
      );
      assert.equal(result.code, 1, result.stdout + result.stderr);
      // Read with the rest of the hub's settings: one problem, one line under the heading.
      const lines = result.stderr.trim().split('\n');
      assert.deepEqual(lines.slice(0, 1), ['fnbus: invalid configuration:'], result.stderr);
      assert.equal(lines.length, 2, result.stderr);
      assert.match(lines[1] ?? '', /^ {2}- --provider: /);
      assert.match(lines[1] ?? '', said);
      assert.equal(result.stderr.includes('hunter2'), false);
      assert.equal(result.stdout, '');
    }
    const up = await runCli(
      ['up', '--provider', 'swarm://m', '--port', '0', '--state-dir', stateDir],
      hubCliEnv,
    );
    assert.equal(up.code, 1);
    assert.match(up.stderr, /--provider: provider swarm:\/\/ is not available yet/);
  });
});
