import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { request as undiciRequest } from 'undici';
import { cliMain } from '../helpers/cli.js';
import { freePort, request } from '../helpers/http.js';
import {
  deployProcess,
  hubCredentials,
  ready,
  startHub,
  stopHub,
  systemAuth,
} from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, makeTempDir, repoRoot } from '../helpers/watchdog.js';

const mib = 1024 * 1024;

/** A /proc/<pid>/status figure, in bytes. */
function statusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((text) => text.startsWith(`${field}:`));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? Number.NaN) * 1024;
}

/**
 * How much the process's resident memory rose at its peak while `work` ran: its high-water mark
 * is reset first (clear_refs 5), so the peak is this work's, however short it was.
 */
async function peakGrowth(pid: number, work: () => Promise<void>): Promise<number> {
  const before = statusBytes(pid, 'VmRSS');
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // Not allowed here: the high-water mark since start still bounds this work's peak from above.
  }
  await work();
  return statusBytes(pid, 'VmHWM') - before;
}

/** Sends `bytes` zero bytes (streamed, never held whole) and counts the answer's bytes. */
async function transfer(
  url: string,
  bytes: number,
): Promise<{ status: number; received: number; text: string }> {
  const chunk = Buffer.alloc(64 * 1024);
  let left = bytes;
  const body = new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const size = Math.min(left, chunk.length);
      left -= size;
      this.push(size === chunk.length ? chunk : chunk.subarray(0, size));
    },
  });
  const req = httpRequest(url, {
    method: 'POST',
    headers: bytes > 0 ? { 'Content-Length': bytes } : {},
  });
  // The answer is read as it comes, while the body is still being sent (an echo needs both).
  let received = 0;
  let text = '';
  const answered = new Promise<number>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      res.on('data', (data: Buffer) => {
        received += data.length;
        if (text.length < 1000) text += data.toString();
      });
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', reject);
    });
  });
  if (bytes > 0) await pipeline(body, req).catch(() => {});
  else req.end();
  const status = await answered;
  return { status, received, text };
}

describe('the hub keeps its memory bounded whatever the bodies', () => {
  it('streams a large upload and a large output, and answers 502 for a fork output past max_response_bytes', async (t) => {
    const stateDir = makeTempDir('fnbus-bounds-');
    const { hub, url } = await startHub(['--connectors', 'none'], stateDir);
    t.after(() => stopHub(hub));
    const size = 256 * mib;
    await deployProcess(url, 'sink', 'wc -c', {});
    await deployProcess(url, 'big', `head -c ${size} /dev/zero`, {});
    for (const [name, fprocess, mode] of [
      ['echo-stream', 'cat', 'streaming'],
      ['big-stream', `head -c ${size} /dev/zero`, 'streaming'],
      ['echo-http', `${process.execPath} ${fixture('node-http-server.cjs')}`, 'http'],
    ] as const) {
      await deployProcess(url, name, fprocess, {}, { mode });
    }
    for (const name of ['sink', 'big', 'echo-stream', 'big-stream', 'echo-http']) {
      await ready(url, name);
    }
    const pid = hub.pid as number;
    // Figures seen: 30 to 60 MB of garbage for 256 MB through; before the bounds, 225 MB (upload)
    // and 500 MB (fork output) or more. 128 MB leaves room for a loaded machine's lazy GC.
    const bound = 128 * mib;

    let result = { status: 0, received: 0, text: '' };
    const upload = await peakGrowth(pid, async () => {
      result = await transfer(`${url}/function/sink`, size);
    });
    assert.equal(result.status, 200);
    assert.equal(result.text.trim(), String(size));
    assert.ok(upload < bound, `fork upload: +${Math.round(upload / mib)} MB`);

    const echo = await peakGrowth(pid, async () => {
      result = await transfer(`${url}/function/echo-stream`, size);
    });
    assert.equal(result.status, 200);
    assert.equal(result.received, size);
    assert.ok(echo < bound, `streaming echo: +${Math.round(echo / mib)} MB`);

    const output = await peakGrowth(pid, async () => {
      result = await transfer(`${url}/function/big-stream`, 0);
    });
    assert.equal(result.status, 200);
    assert.equal(result.received, size);
    assert.ok(output < bound, `streaming output: +${Math.round(output / mib)} MB`);

    const http = await peakGrowth(pid, async () => {
      result = await transfer(`${url}/function/echo-http/stream-echo`, size);
    });
    assert.equal(result.status, 200);
    assert.equal(result.received, size);
    assert.ok(http < bound, `http echo: +${Math.round(http / mib)} MB`);

    const capped = await peakGrowth(pid, async () => {
      result = await transfer(`${url}/function/big`, 0);
    });
    assert.equal(result.status, 502);
    assert.match(result.text, /max_response_bytes/);
    assert.ok(capped < bound, `fork output: +${Math.round(capped / mib)} MB`);
    t.diagnostic(
      `RSS peak growth for ${size / mib} MB: fork upload ${Math.round(upload / mib)} MB, streaming echo ${Math.round(echo / mib)} MB, streaming output ${Math.round(output / mib)} MB, http echo ${Math.round(http / mib)} MB, fork output over the cap ${Math.round(capped / mib)} MB`,
    );
  });
});

describe('the hub under a low open-file limit', () => {
  it('starts whatever its state folder holds, runs what fits, answers /healthz and 409 at the cap', async (t) => {
    const stateDir = makeTempDir('fnbus-fds-');
    const saved = 150;
    mkdirSync(join(stateDir, 'functions'));
    for (let i = 0; i < saved; i++) {
      const name = `f${String(i).padStart(3, '0')}`;
      const spec = { service: name, image: 'x', envProcess: 'cat', namespace: 'openfaas-fn' };
      writeFileSync(
        join(stateDir, 'functions', `${name}.json`),
        JSON.stringify({ spec, replicas: 1, createdAt: new Date().toISOString() }),
      );
    }
    // 384 open files: (384 - 256 for the hub) / 4 per replica = 32 replicas fit. Before the caps,
    // 150 replicas took ~450 and the hub failed with EMFILE.
    const fit = 32;
    const port = await freePort();
    const hub = spawn(
      'sh',
      [
        '-c',
        // Soft and hard both (node raises its soft limit to the hard one), then the hub itself.
        'ulimit -n 384 && exec "$0" "$@"',
        process.execPath,
        cliMain,
        'up',
        '--port',
        String(port),
        '--state-dir',
        stateDir,
        '--connectors',
        'none',
      ],
      {
        cwd: repoRoot,
        env: {
          ...process.env,
          FNBUS_USERNAME: hubCredentials.user,
          FNBUS_PASSWORD: hubCredentials.password,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    hub.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    hub.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    t.after(() => stopHub(hub));
    await waitFor(() => output.includes('"fnbus is up"') || hub.exitCode !== null, {
      timeoutMs: 30_000,
      what: 'fnbus up',
    });
    assert.equal(hub.exitCode, null, output);
    const url = `http://127.0.0.1:${port}`;
    assert.equal((await request(`${url}/healthz`)).status, 200);

    type Listed = { name: string; availableReplicas: number };
    const list = async () =>
      JSON.parse(
        (await request(`${url}/system/functions`, { headers: systemAuth })).text,
      ) as Listed[];
    const functions = await waitFor(
      async () => {
        const listed = await list();
        return listed.filter((fn) => fn.availableReplicas > 0).length === fit && listed;
      },
      { timeoutMs: 30_000, what: `${fit} functions ready` },
    );
    assert.equal(functions.length, saved);
    // The ones over the cap are said once, in one line.
    assert.equal(output.split('were not started').length - 1, 1, output);
    assert.doesNotMatch(output, /EMFILE/);

    const first = await request(`${url}/function/f000`, { method: 'POST', body: 'hi' });
    assert.equal(first.text, 'hi');
    const last = await request(`${url}/function/f149`, { method: 'POST', body: 'hi' });
    assert.equal(last.status, 503);
    assert.match(last.text, /max_total_replicas/);

    const deploy = await request(`${url}/system/functions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...systemAuth },
      body: JSON.stringify({ service: 'one-more', image: 'x', envProcess: 'cat' }),
    });
    assert.equal(deploy.status, 409);
    assert.match(deploy.text, /max_total_replicas/);
    // Room made by removing a running one: a kept one starts when scaled.
    const removed = await request(`${url}/system/functions`, {
      method: 'DELETE',
      headers: { 'Content-Type': 'application/json', ...systemAuth },
      body: JSON.stringify({ functionName: 'f000' }),
    });
    assert.equal(removed.status, 202);
    const scaled = await request(`${url}/system/scale-function/f149`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...systemAuth },
      body: JSON.stringify({ serviceName: 'f149', replicas: 1 }),
    });
    assert.equal(scaled.status, 202, scaled.text);
    await ready(url, 'f149');
    assert.equal((await request(`${url}/healthz`)).status, 200);
  });
});

describe('the hub answers a refused body rather than resetting the connection', () => {
  it('413 for a body past the limit and 401 without credentials, while the client still sends', async (t) => {
    const stateDir = makeTempDir('fnbus-refused-');
    const { hub, url } = await startHub(['--connectors', 'none'], stateDir);
    t.after(() => stopHub(hub));
    const big = Buffer.alloc(2 * mib, 'a');
    // Refused before a byte of the body is read (its Content-Length, its credentials): the
    // connection used to be closed under the client, which saw a reset (EPIPE) one time in four.
    for (const [path, headers, status] of [
      ['/async-function/anything', {}, '413'],
      ['/system/functions', { 'content-type': 'application/json', ...systemAuth }, '413'],
      ['/system/functions', { 'content-type': 'application/json' }, '401'],
    ] as const) {
      const seen: Record<string, number> = {};
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let i = 0; i < 10; i++) {
            const outcome = await undiciRequest(`${url}${path}`, {
              method: 'POST',
              headers,
              body: big,
            }).then(
              async (res) => {
                await res.body.dump();
                return String(res.statusCode);
              },
              (error: NodeJS.ErrnoException) => error.code ?? error.message,
            );
            seen[outcome] = (seen[outcome] ?? 0) + 1;
          }
        }),
      );
      assert.deepEqual(seen, { [status]: 80 }, path);
    }
  });
});
