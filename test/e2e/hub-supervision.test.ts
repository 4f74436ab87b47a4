import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { LocalQueue } from '../../queue/local/local-queue.js';
import { request, type HttpResult } from '../helpers/http.js';
import { ready, startHub, stopHub, systemAuth, writeTallyStack } from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

const lines = (file: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];

/** A small tmpfs at `dir` (root only: CI runs as root); false when it cannot be mounted. */
function mountTmpfs(dir: string, size: string): boolean {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Writes `file` until its file system is full; returns the bytes written. */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  let written = 0;
  try {
    for (let size = chunk.length; size > 0;) {
      try {
        written += writeSync(fd, chunk, 0, size);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
        size = size >> 1; // the last few pages, in smaller writes
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

/** One async call to `fn` with `body`. */
const submit = (url: string, fn: string, body: string | Buffer = 'x'): Promise<HttpResult> =>
  request(`${url}/async-function/${fn}`, { method: 'POST', body, timeoutMs: 20_000 });

const health = (url: string) => request(`${url}/healthz`);

describe('fnbus up supervises its queue worker', () => {
  it('answers 507 on a full disk, reports the worker down, and runs the calls once room is back', async (t) => {
    const dir = makeTempDir('fnbus-full-');
    const state = join(dir, 'state');
    if (!mountTmpfs(state, '24m')) {
      t.skip('cannot mount a tmpfs here (needs root)');
      return;
    }
    t.after(() => execFileSync('umount', ['-l', state]));
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
    truncateSync(filler, fill(filler) - 250 * 1024);
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
});

void once;
void Database;
void LocalQueue;
void systemAuth;
