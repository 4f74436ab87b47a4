import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { LocalQueue } from '../../queue/local/local-queue.js';
import { fillDisk, mountSmallDisk } from '../helpers/disk.js';
import { request, type HttpResult } from '../helpers/http.js';
import {
  processesUsing,
  ready,
  startHub,
  stopHub,
  systemAuth,
  writeTallyStack,
} from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { startNats, startRedis } from '../helpers/servers.js';
import { makeTempDir } from '../helpers/watchdog.js';

const lines = (file: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];

/** One async call to `fn` with `body`. */
const submit = (url: string, fn: string, body: string | Buffer = 'x'): Promise<HttpResult> =>
  request(`${url}/async-function/${fn}`, { method: 'POST', body, timeoutMs: 20_000 });

const health = (url: string) => request(`${url}/healthz`);

describe('fnbus up supervises its queue worker', () => {
  it('answers 507 on a full disk, reports the worker down, and runs the calls once room is back', async (t) => {
    const dir = makeTempDir('fnbus-full-');
    const state = join(dir, 'state');
    const unmount = mountSmallDisk(state, 24);
    if (!unmount) {
      t.skip('cannot mount a small file system here (tmpfs or loop: needs root)');
      return;
    }
    t.after(unmount);
    const tally = join(dir, 'tally.txt');
    const running = await startHub(['-f', writeTallyStack(dir, tally, 0)], state, {
      FNBUS_CONNECTORS: 'none',
    });
    const { hub, url } = running;
    t.after(() => stopHub(hub));
    await ready(url, 'tally');
    const first = await submit(url, 'tally');
    assert.equal(first.status, 202, first.text);
    await waitFor(() => lines(tally).length === 1, { what: 'the first call to run' });

    // The disk full but for room to store one big call, and not for the worker to claim it
    // (SQLite rewrites the whole row): the worker thread fails on SQLITE_FULL.
    const filler = join(state, 'filler');
    truncateSync(filler, fillDisk(filler) - 250 * 1024);
    const big = Buffer.alloc(128 * 1024, 'a');
    const stored = await submit(url, 'tally', big);
    assert.equal(stored.status, 202, stored.text);
    const accepted = [String(first.headers['x-call-id']), String(stored.headers['x-call-id'])];
    const down = await waitFor(
      async () => {
        const res = await health(url);
        return res.status === 503 && res.text;
      },
      { timeoutMs: 10_000, what: `/healthz to report the worker down` },
    );
    assert.match(down, /queue worker down \(SQLITE_FULL\)/, running.output());
    // New calls are refused while nothing can be stored: 507, not 202 or 500.
    const refused = await submit(url, 'tally', big);
    assert.equal(refused.status, 507, refused.text);
    assert.match(refused.text, /disk is full/);
    // /metrics answers, without the worker's part.
    const metrics = await request(`${url}/metrics`, { timeoutMs: 5000 });
    assert.equal(metrics.status, 200);

    rmSync(filler);
    await waitFor(async () => (await submit(url, 'tally')).status === 202, {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: 'calls to be accepted again',
    });
    await waitFor(() => accepted.every((id) => lines(tally).includes(id)), {
      timeoutMs: 40_000,
      intervalMs: 100,
      what: 'every accepted call to run',
    });
    await waitFor(async () => (await health(url)).status === 200, {
      timeoutMs: 20_000,
      what: 'the hub to be healthy again',
    });
  });

  it('restarts the worker after it fails on a locked queue file, and runs the calls', async (t) => {
    const dir = makeTempDir('fnbus-locked-');
    const state = join(dir, 'state');
    const tally = join(dir, 'tally.txt');
    const running = await startHub(['-f', writeTallyStack(dir, tally, 0)], state, {
      FNBUS_CONNECTORS: 'none',
    });
    const { hub, url } = running;
    t.after(() => stopHub(hub));
    await ready(url, 'tally');
    const first = await submit(url, 'tally');
    assert.equal(first.status, 202, first.text);
    await waitFor(() => lines(tally).length === 1, { what: 'the first call to run' });

    // Another program holds the queue's write lock (an sqlite3 shell in a transaction, a backup
    // tool): the worker's next write waits SQLite's busy timeout, fails with SQLITE_BUSY, and the
    // thread ends; its restarts fail the same way until the lock is released.
    const db = new Database(join(state, 'queue.db'));
    db.exec('BEGIN IMMEDIATE');
    t.after(() => {
      if (db.inTransaction) db.exec('ROLLBACK');
      db.close();
    });
    // The thread is stuck in SQLite's busy wait: /metrics answers without its part, in time.
    const stuckAsked = Date.now();
    assert.equal((await request(`${url}/metrics`, { timeoutMs: 10_000 })).status, 200);
    const stuckMs = Date.now() - stuckAsked;
    t.diagnostic(`/metrics answered in ${stuckMs} ms with the worker stuck`);
    assert.ok(stuckMs < 4000, `/metrics answered in ${stuckMs} ms`);
    const down = await waitFor(
      async () => {
        const res = await health(url);
        return res.status === 503 && res.text;
      },
      { timeoutMs: 20_000, what: '/healthz to report the worker down' },
    );
    assert.match(down, /queue worker down \(SQLITE_BUSY\)/, running.output());
    // /metrics answers in time whatever the thread does (it may be stuck in a busy wait).
    const asked = Date.now();
    const metrics = await request(`${url}/metrics`, { timeoutMs: 5000 });
    assert.equal(metrics.status, 200);
    t.diagnostic(`/metrics answered in ${Date.now() - asked} ms with the worker down`);
    // Nothing can be stored meanwhile: 503 (not 202, not 500).
    const refused = await submit(url, 'tally');
    assert.equal(refused.status, 503, refused.text);
    // Nor changed: cancel and purge are 503s too.
    const cancel = await request(`${url}/system/calls/${String(first.headers['x-call-id'])}`, {
      method: 'DELETE',
      headers: systemAuth,
    });
    assert.equal(cancel.status, 503, cancel.text);
    const purge = await request(`${url}/system/dead-letters`, {
      method: 'DELETE',
      headers: { ...systemAuth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ all: true }),
    });
    assert.equal(purge.status, 503, purge.text);

    db.exec('COMMIT');
    const after = await submit(url, 'tally');
    assert.equal(after.status, 202, after.text);
    await waitFor(() => lines(tally).includes(String(after.headers['x-call-id'])), {
      timeoutMs: 40_000,
      intervalMs: 100,
      what: 'the call queued after the lock to run',
    });
    await waitFor(async () => (await health(url)).status === 200, {
      timeoutMs: 20_000,
      what: 'the hub to be healthy again',
    });
    assert.match(running.output(), /the queue worker is running again/);
  });

  it('on SIGTERM stops accepting at once and exits 0 within shutdown_timeout, a call stuck', async (t) => {
    const dir = makeTempDir('fnbus-shutdown-');
    const state = join(dir, 'state');
    const tally = join(dir, 'tally.txt');
    // tally hangs for an hour after writing the call's id; brief answers after a second.
    const brief = join(dir, 'brief.txt');
    const stack = writeTallyStack(dir, tally, 3600, [
      '  brief:',
      '    image: fnbus/brief',
      `    fprocess: sh -c 'echo started >> ${brief}; sleep 1; echo brief-done'`,
    ]);
    const running = await startHub(['-f', stack], state, {
      FNBUS_CONNECTORS: 'none',
      shutdown_timeout: '3s',
    });
    const { hub, url } = running;
    t.after(() => {
      if (hub.exitCode === null) hub.kill('SIGKILL');
    });
    await ready(url, 'tally');
    await ready(url, 'brief');
    const queued = await submit(url, 'tally');
    assert.equal(queued.status, 202, queued.text);
    // A sync call stuck too, on a connection of its own.
    const sync = request(`${url}/function/tally`, { method: 'POST', body: 'x', timeoutMs: 30_000 });
    const syncAnswer = sync.then(
      (res) => res.status,
      (error: NodeJS.ErrnoException) => error.code ?? error.message,
    );
    // And a call that ends within the bound: it is drained, not cut.
    const drained = request(`${url}/function/brief`, {
      method: 'POST',
      body: 'x',
      timeoutMs: 30_000,
    });
    await waitFor(() => lines(tally).length === 2 && lines(brief).length === 1, {
      what: 'the calls to be in their functions',
    });

    const exited = once(hub, 'exit');
    const signalled = Date.now();
    hub.kill('SIGTERM');
    await waitFor(() => running.output().includes('"stopping"'), {
      what: 'the hub to log stopping',
    });
    // From here on: no new connection, or a 503; nothing queued.
    const late = await submit(url, 'tally').then(
      (res) => res.status,
      (error: NodeJS.ErrnoException) => error.code,
    );
    assert.ok(late === 'ECONNREFUSED' || late === 503, `refused after stopping: ${late}`);
    const [code] = (await Promise.race([
      exited,
      waitFor(() => false, { timeoutMs: 15_000, what: 'the hub to exit' }),
    ])) as [number | null];
    const tookMs = Date.now() - signalled;
    t.diagnostic(
      `stopped in ${tookMs} ms (shutdown_timeout 3s); the sync call got ${await syncAnswer}`,
    );
    assert.equal(code, 0, running.output());
    assert.ok(tookMs < 10_000, `stopped in ${tookMs} ms`);
    const finished = await drained;
    assert.equal(finished.status, 200);
    assert.equal(finished.text.trim(), 'brief-done');
    assert.deepEqual(processesUsing(state), [], 'no function process left behind');
    // The queue holds the call accepted before (it runs again at the next start), and no other.
    const queue = new LocalQueue({ file: join(state, 'queue.db') });
    try {
      const stats = await queue.stats();
      assert.deepEqual(
        Object.fromEntries(Object.entries(stats).map(([fn, s]) => [fn, s.queued + s.running])),
        { tally: 1 },
      );
      assert.equal((await queue.status(String(queued.headers['x-call-id'])))?.state, 'queued');
    } finally {
      await queue.close();
    }
  });

  for (const backend of ['redis', 'nats'] as const) {
    it(`on ${backend === 'redis' ? 'Redis' : 'NATS'} down: 503 to async calls, and a bounded stop`, async (t) => {
      const server = backend === 'redis' ? await startRedis() : await startNats();
      t.after(() => server.stop());
      const dir = makeTempDir(`fnbus-${backend}-down-`);
      const running = await startHub(
        ['-f', writeTallyStack(dir, join(dir, 'tally.txt'), 0), '--queue', server.url],
        join(dir, 'state'),
        { FNBUS_CONNECTORS: 'none', shutdown_timeout: '2s' },
      );
      const { hub, url } = running;
      t.after(() => {
        if (hub.exitCode === null) hub.kill('SIGKILL');
      });
      await ready(url, 'tally');
      assert.equal((await submit(url, 'tally')).status, 202);
      await server.stop();
      const asked = Date.now();
      const refused = await submit(url, 'tally');
      t.diagnostic(`${refused.status} "${refused.text.trim()}" in ${Date.now() - asked} ms`);
      assert.equal(refused.status, 503, refused.text);
      assert.match(refused.text, /cannot be reached/);
      // The worker cannot reach its queue either: the stop is bounded all the same.
      const exited = once(hub, 'exit');
      const signalled = Date.now();
      hub.kill('SIGTERM');
      const [code] = (await Promise.race([
        exited,
        waitFor(() => false, { timeoutMs: 15_000, what: 'the hub to exit' }),
      ])) as [number | null];
      t.diagnostic(`stopped in ${Date.now() - signalled} ms`);
      assert.equal(code, 0, running.output());
    });
  }
});
