import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const cli = join(root, 'dist', 'cli', 'main.js');

/** Runs `fnbus up` as a real process; resolves once it says it is up. */
async function startHub(args: string[], stateDir: string, env: NodeJS.ProcessEnv = {}) {
  const port = await freePort();
  const hub = spawn(
    process.execPath,
    [cli, 'up', '--port', String(port), '--state-dir', stateDir, ...args],
    {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  hub.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  hub.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor(() => output.includes('"fnbus is up"'), { timeoutMs: 20_000, what: 'fnbus up' });
  return { hub, url: `http://127.0.0.1:${port}`, output: () => output };
}

async function stopHub(hub: ChildProcess): Promise<void> {
  if (hub.exitCode !== null) return;
  const exited = once(hub, 'exit');
  hub.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0);
}

/** Processes whose command line mentions the state folder: the hub's replicas and runners. */
function processesUsing(stateDir: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/environ`, 'utf8').includes(stateDir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

const ready = (url: string, name: string) =>
  waitFor(
    async () => {
      const res = await request(`${url}/system/function/${name}`);
      return (
        res.status === 200 &&
        (JSON.parse(res.text) as { availableReplicas: number }).availableReplicas > 0
      );
    },
    { timeoutMs: 20_000, what: `${name} to be ready` },
  );

describe('fnbus up', () => {
  it('runs the sample stack: forked and template functions answer through the gateway', async (t) => {
    const stateDir = makeTempDir('fnbus-up-');
    const { hub, url } = await startHub(['-f', join(root, 'examples', 'stack.yml')], stateDir);
    t.after(() => stopHub(hub));
    for (const name of ['cat', 'sha512sum', 'hello-node', 'hello-python', 'orders'])
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
    const list = JSON.parse((await request(`${url}/system/functions`)).text) as {
      name: string;
      annotations?: Record<string, string>;
    }[];
    assert.equal(list.find((fn) => fn.name === 'orders')?.annotations?.topic, 'orders,payments');
  });

  it('stops every process it started on SIGTERM, and brings functions back on the next start', async () => {
    const stateDir = makeTempDir('fnbus-up-');
    const first = await startHub([], stateDir);
    const deployed = await request(`${first.url}/system/functions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
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
  });

  it('refuses a broken stack file with one line naming the field, and exits 1', async () => {
    const dir = makeTempDir('fnbus-up-');
    const stack = join(dir, 'stack.yml');
    writeFileSync(stack, 'provider:\n  name: openfaas\nfunctions:\n  Bad_Name:\n    image: x\n');
    const hub = spawn(
      process.execPath,
      [cli, 'up', '-f', stack, '--state-dir', dir, '--port', '0'],
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
