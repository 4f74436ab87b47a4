import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cliMain } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import { processesUsing, ready, startHub, stopHub, systemAuth } from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('fnbus up', () => {
  it('runs the sample stack: forked and template functions answer through the gateway', async (t) => {
    const stateDir = makeTempDir('fnbus-up-');
    // Template functions are built into this machine's image store, here one of the test's own.
    const images = makeTempDir('fnbus-up-images-');
    const { hub, url } = await startHub(['-f', join(root, 'examples', 'stack.yml')], stateDir, {
      FNBUS_IMAGES: images,
    });
    t.after(() => stopHub(hub));
    for (const name of ['cat', 'sha512sum', 'hello-node', 'hello-python', 'orders', 'every-minute'])
      await ready(url, name);

    const hash = await request(`${url}/function/sha512sum`, { method: 'POST', body: 'hello' });
    assert.match(hash.text, /^9b71d224bd62f378/);
    const node = await request(`${url}/function/hello-node`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"a":1}',
    });
    assert.deepEqual(JSON.parse(node.text), { status: 'Received input: {"a":1}' });
    const python = await request(`${url}/function/hello-python`, { method: 'POST', body: 'x' });
    assert.equal(python.status, 200);
    const list = JSON.parse(
      (await request(`${url}/system/functions`, { headers: systemAuth })).text,
    ) as {
      name: string;
      annotations?: Record<string, string>;
    }[];
    assert.equal(list.find((fn) => fn.name === 'orders')?.annotations?.topic, 'orders,payments');
    // Deployed as the stack says, runnable by another machine: no path of this one.
    assert.doesNotMatch(JSON.stringify(list), new RegExp(root));
    assert.deepEqual(readdirSync(images).sort(), [
      'hello-node%3Alatest.json',
      'hello-python%3Alatest.json',
      'orders%3Alatest.json',
    ]);
  });

  it('stops every process it started on SIGTERM, and brings functions back on the next start', async () => {
    const stateDir = makeTempDir('fnbus-up-');
    const first = await startHub([], stateDir);
    const deployed = await request(`${first.url}/system/functions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...systemAuth },
      body: JSON.stringify({ service: 'kept', image: 'fnbus/cat:latest', envProcess: 'cat' }),
    });
    assert.equal(deployed.status, 202);
    await ready(first.url, 'kept');
    assert.ok(processesUsing(stateDir).length > 0);
    await stopHub(first.hub);
    await waitFor(() => processesUsing(stateDir).length === 0, { what: 'no process left' });

    const second = await startHub([], stateDir);
    try {
      await ready(second.url, 'kept');
      const res = await request(`${second.url}/function/kept`, {
        method: 'POST',
        body: 'still here',
      });
      assert.equal(res.text, 'still here');
    } finally {
      await stopHub(second.hub);
    }
  });

  it('leaves no function process behind when it is killed with SIGKILL', async () => {
    const stateDir = makeTempDir('fnbus-up-');
    const { hub, url } = await startHub(['-f', join(root, 'examples', 'stack.yml')], stateDir);
    for (const name of ['cat', 'hello-node', 'hello-python']) await ready(url, name);
    const started = processesUsing(stateDir);
    assert.ok(started.length >= 3, `function processes: ${started.join(', ')}`);
    const exited = once(hub, 'exit');
    hub.kill('SIGKILL');
    await exited;
    await waitFor(() => processesUsing(stateDir).length === 0, {
      what: `no process left of ${started.join(', ')}`,
    });
  });

  it('protects /system with basic auth, credentials from FNBUS_USERNAME / FNBUS_PASSWORD', async (t) => {
    const stateDir = makeTempDir('fnbus-up-');
    const { hub, url } = await startHub([], stateDir, {
      basic_auth: 'true',
      secret_mount_path: makeTempDir('fnbus-no-secrets-'),
      FNBUS_USERNAME: 'admin',
      FNBUS_PASSWORD: 'pw',
    });
    t.after(() => stopHub(hub));
    const refused = await request(`${url}/system/functions`);
    assert.equal(refused.status, 401);
    assert.equal(refused.headers['www-authenticate'], 'Basic realm="Restricted"');
    const authorization = `Basic ${Buffer.from('admin:pw').toString('base64')}`;
    const allowed = await request(`${url}/system/functions`, {
      headers: { Authorization: authorization },
    });
    assert.equal(allowed.status, 200);
    assert.equal((await request(`${url}/healthz`)).status, 200);

    // The connectors list functions with the hub's own credentials: a webhook reaches its topic.
    const deployed = await request(`${url}/system/functions`, {
      method: 'POST',
      headers: { Authorization: authorization, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        service: 'hooked',
        image: 'fnbus/cat',
        envProcess: 'cat',
        annotations: { topic: 'guarded', 'fnbus.connector.invocation': 'sync' },
      }),
    });
    assert.equal(deployed.status, 202);
    const answer = await waitFor(
      async () => {
        const res = await request(`${url}/webhook/guarded`, { method: 'POST', body: 'through' });
        return res.status === 200 && res;
      },
      { timeoutMs: 15_000, what: 'the webhook to reach the function' },
    );
    assert.equal(answer.text, 'through');
  });

  it('refuses a broken stack file with one line naming the field, and exits 1', async () => {
    const dir = makeTempDir('fnbus-up-');
    const stack = join(dir, 'stack.yml');
    writeFileSync(stack, 'provider:\n  name: openfaas\nfunctions:\n  Bad_Name:\n    image: x\n');
    const hub = spawn(
      process.execPath,
      [cliMain, 'up', '-f', stack, '--state-dir', dir, '--port', '0'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    hub.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(hub, 'exit')) as [number | null];
    assert.equal(code, 1);
    assert.match(stderr, /stack\.yml:4:.*Bad_Name/);
  });
});
