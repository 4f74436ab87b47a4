import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, startWatchdog, type RunningWatchdog } from '../helpers/watchdog.js';

/**
 * The forking modes start processes through fnbus-spawner when it is built and through node's
 * child_process otherwise (fork_helper=false, or no C compiler at install). Both must behave
 * the same; the other watchdog tests run on the helper, these run the same checks on both.
 */
for (const forkHelper of ['true', 'false']) {
  describe(`forking with fork_helper=${forkHelper}`, () => {
    const watchdogs: RunningWatchdog[] = [];
    const start = async (env: Record<string, string>) => {
      const watchdog = await startWatchdog({ fork_helper: forkHelper, ...env });
      watchdogs.push(watchdog);
      return watchdog;
    };
    after(() => Promise.all(watchdogs.map((w) => w.stop())));

    let sha: RunningWatchdog;
    before(async () => {
      sha = await start({ fprocess: 'sha512sum' });
    });

    it('says in the log which launcher it uses only when it falls back', () => {
      const warned = /forking with child_process/.test(sha.stderr);
      assert.equal(warned, false, 'fork_helper=false is a choice, not a fallback to warn about');
    });

    it('hashes bodies of many sizes, many calls at once', async () => {
      const bodies = [0, 1, 4096, 65_537, 3 * 1024 * 1024].map((size) => randomBytes(size));
      const results = await Promise.all(
        bodies.map((body) => request(`${sha.url}/`, { method: 'POST', body })),
      );
      results.forEach((res, i) => {
        assert.equal(res.status, 200);
        const expected = createHash('sha512')
          .update(bodies[i] as Buffer)
          .digest('hex');
        assert.equal(res.text.split(/\s/)[0], expected);
      });
    });

    it('reports a failing process as a 500 with its exit status', async () => {
      const failing = await start({ fprocess: fixture('exit-1.sh') });
      const res = await request(`${failing.url}/`, { method: 'POST', body: 'x' });
      assert.equal(res.status, 500);
      assert.match(res.text, /^exit status 1\n/);
      assert.equal(res.headers['x-openfaas-internal'], undefined);
    });

    it('kills a process past exec_timeout: 408', async () => {
      const slow = await start({ fprocess: fixture('slow.sh'), exec_timeout: '200ms' });
      const res = await request(`${slow.url}/`, { method: 'POST', body: 'x' });
      assert.equal(res.status, 408);
      assert.match(res.text, /Killed process/);
    });

    it('answers 500 naming a command that does not exist, and stays up, not healthy', async () => {
      const missing = await start({ fprocess: 'no-such-command-fnbus' });
      const res = await request(`${missing.url}/`, { method: 'POST', body: 'x' });
      assert.equal(res.status, 500);
      assert.match(res.text, /no-such-command-fnbus/);
      assert.equal(res.headers['x-openfaas-internal'], 'fnbus-watchdog');
      // Up, but not healthy: no call can succeed (its log says why).
      assert.equal((await request(`${missing.url}/_/health`)).status, 503);
      assert.equal((await request(`${missing.url}/`, { method: 'POST' })).status, 500);
    });

    it('streams a large body through cat in streaming mode', async () => {
      const cat = await start({ mode: 'streaming', fprocess: 'cat' });
      const body = randomBytes(8 * 1024 * 1024);
      const res = await request(`${cat.url}/`, { method: 'POST', body });
      assert.equal(res.status, 200);
      assert.ok(res.body.equals(body));
    });
  });
}

describe('fnbus-spawner dies under the watchdog', () => {
  it('fails the calls in flight, starts it again, and serves the next calls', async (t) => {
    // Sleeps as long as the X-Sleep header says (through the CGI environment).
    const watchdog = await startWatchdog({
      fprocess: `sh -c 'cat >/dev/null; echo "pid $$" >&2; sleep "\${Http_X_Sleep:-0}"; echo done'`,
      combine_output: 'false',
    });
    t.after(() => watchdog.stop());
    const pid = watchdog.child.pid as number;
    const helperOf = () =>
      readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').map(Number);
    const [helper] = helperOf();
    assert.ok(helper, 'fnbus-spawner runs beside the watchdog');

    const inFlight = request(`${watchdog.url}/`, {
      method: 'POST',
      body: 'x',
      headers: { 'X-Sleep': '5' },
    });
    await waitFor(() => /pid \d+/.test(watchdog.stderr), { what: 'the call to start' });
    process.kill(helper, 'SIGKILL');
    const failed = await inFlight;
    assert.equal(failed.status, 500);
    assert.match(failed.text, /fnbus-spawner exited/);
    assert.equal(failed.headers['x-openfaas-internal'], 'fnbus-watchdog');

    await waitFor(
      () => {
        const [next] = helperOf();
        return next !== undefined && next !== helper;
      },
      { what: 'a new fnbus-spawner' },
    );
    const next = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    assert.equal(next.status, 200);
    assert.equal(next.text, 'done\n');
  });
});
