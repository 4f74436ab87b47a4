import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { CallRecord } from '../../core/queue.js';
import { runCli } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import {
  hubCliEnv,
  ready,
  startHub,
  stopHub,
  systemAuth,
  writeTallyStack,
} from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, makeTempDir } from '../helpers/watchdog.js';

/** Fast retries, so that dead letters come in a test's time. */
const workerEnv = { initial_retry_wait: '50ms', max_retry_wait: '100ms', max_retry_attempts: '2' };

/** A stack: `tally` (each call id to a file), and `flaky` (the node http fixture). */
const writeStack = (dir: string, tallyFile: string) =>
  writeTallyStack(dir, tallyFile, 0.05, [
    '  flaky:',
    '    image: fnbus/flaky',
    `    fprocess: node ${fixture('node-http-server.cjs')}`,
    '    environment:',
    '      mode: http',
  ]);

describe('the async path through fnbus up (local queue) and the CLI', () => {
  it('invoke --async, call, and dlq list, show, redrive and purge', async (t) => {
    const dir = makeTempDir('fnbus-async-up-');
    const stack = writeStack(dir, join(dir, 'tally.txt'));
    const { hub, url } = await startHub(['-f', stack], join(dir, 'state'), workerEnv);
    t.after(() => stopHub(hub));
    await ready(url, 'flaky');
    await ready(url, 'tally');
    const env = { FNBUS_GATEWAY: url, ...hubCliEnv };

    const queued = await runCli(['invoke', '--async', 'tally'], env, 'hello');
    assert.equal(queued.code, 0, queued.stderr);
    const callId = queued.stdout.trim();
    assert.match(callId, /^[0-9a-f-]{36}$/);
    await waitFor(async () => (await runCli(['call', callId], env)).stdout.includes('succeeded'), {
      timeoutMs: 10_000,
      what: 'the call to succeed',
    });
    const shown = await runCli(['call', callId], env);
    assert.match(shown.stdout, /State:\s+succeeded/);
    assert.match(shown.stdout, /1\. \S+ {2}status 200/);

    const misuse = await runCli(['invoke', 'tally', '--callback-url', 'http://x'], env);
    assert.equal(misuse.code, 1);
    assert.match(misuse.stderr, /--callback-url and --idempotency-key go with --async/);

    const dead = await request(`${url}/async-function/flaky/flaky?key=k2&fail=9`, {
      method: 'POST',
      // Bytes: node writes a string body's headers as UTF-8 with it, each Latin-1 character twice.
      body: Buffer.from('x'),
      // A header's UTF-8 bytes, as Go's clients send them (node's writer takes one byte a character).
      headers: { 'X-Topic': Buffer.from('sensors/厨房', 'utf8').toString('latin1') },
    });
    const deadId = String(dead.headers['x-call-id']);
    await waitFor(async () => (await runCli(['dlq', 'list'], env)).stdout.includes(deadId), {
      timeoutMs: 10_000,
      what: 'the dead letter',
    });
    const list = await runCli(['dlq', 'list', '--function', 'flaky'], env);
    assert.match(list.stdout, /^CALL\s+FUNCTION\s+ATTEMPTS\s+STATUS/);
    assert.match(list.stdout, new RegExp(`${deadId}\\s+flaky\\s+2\\s+503`));
    const letter = JSON.parse((await runCli(['dlq', 'show', deadId], env)).stdout) as CallRecord & {
      request: { Path: string; Header: Record<string, string[]> };
    };
    assert.equal(letter.request.Path, '/flaky');
    assert.deepEqual(letter.request.Header['X-Topic'], ['sensors/厨房']);

    // Two more letters: `dlq list` pages through them, one page at a time when asked.
    for (const reason of ['second', 'third']) {
      const stored = await request(`${url}/system/dead-letters`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...systemAuth },
        body: JSON.stringify({ function: 'flaky', attempts: [], reason }),
      });
      assert.equal(stored.status, 201, stored.text);
    }
    const first = await runCli(['dlq', 'list', '--limit', '1'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`^CALL.*\\n${deadId}\\s`));
    const cursor = /^next: --cursor (\S+)$/m.exec(first.stdout)?.[1];
    assert.ok(cursor, first.stdout);
    const second = await runCli(['dlq', 'list', '--limit', '1', '--cursor', cursor], env);
    assert.match(second.stdout, /second/);
    assert.doesNotMatch(second.stdout, new RegExp(deadId));
    const everyPage = await runCli(['dlq', 'list', '--json', '--limit', '1'], env);
    assert.equal((JSON.parse(everyPage.stdout) as { items: unknown[] }).items.length, 1);
    const all = JSON.parse((await runCli(['dlq', 'list', '--json'], env)).stdout) as {
      reason: string;
    }[];
    assert.deepEqual(all.map((item) => item.reason).slice(1), ['second', 'third']);

    const vague = await runCli(['dlq', 'redrive'], env);
    assert.equal(vague.code, 1);
    assert.match(vague.stderr, /name one call id, or --function NAME, or --all/);
    const redriven = await runCli(['dlq', 'redrive', deadId], env);
    assert.equal(redriven.code, 0, redriven.stderr);
    assert.match(redriven.stdout, new RegExp(`queued again: 1\\n${deadId}`));
    await waitFor(
      async () => (await runCli(['dlq', 'list', '--json'], env)).stdout.includes(deadId),
      { timeoutMs: 10_000, what: 'the redriven call to be dead again' },
    );
    const purged = await runCli(['dlq', 'purge', '--function', 'flaky'], env);
    assert.equal(purged.code, 0, purged.stderr);
    assert.match(purged.stdout, /purged: [1-9]/);
    assert.equal((await runCli(['dlq', 'list'], env)).stdout, 'no dead letters\n');

    const unknown = await runCli(['call', '00000000-0000-0000-0000-000000000000'], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /404/);
  });

  it('runs every accepted call after the hub is killed with SIGKILL mid-way', async (t) => {
    const dir = makeTempDir('fnbus-async-kill-');
    const tally = join(dir, 'tally.txt');
    const stack = writeStack(dir, tally);
    const state = join(dir, 'state');
    const first = await startHub(['-f', stack], state, { max_inflight: '4' });
    await ready(first.url, 'tally');

    const accepted: string[] = [];
    for (let i = 0; i < 60; i++) {
      const res = await request(`${first.url}/async-function/tally`, {
        method: 'POST',
        body: `${i}`,
      });
      assert.equal(res.status, 202);
      accepted.push(String(res.headers['x-call-id']));
    }
    // Killed while calls are running: some have run, some are in flight, most wait.
    await waitFor(() => existsSync(tally) && readFileSync(tally, 'utf8').split('\n').length > 8, {
      what: 'some calls to have run',
    });
    const exited = once(first.hub, 'exit');
    first.hub.kill('SIGKILL');
    await exited;
    const ranBefore = new Set(readFileSync(tally, 'utf8').split('\n').filter(Boolean)).size;

    const second = await startHub([], state, {}, first.port);
    t.after(() => stopHub(second.hub));
    const runs = await waitFor(
      () => {
        const lines = readFileSync(tally, 'utf8').split('\n').filter(Boolean);
        return accepted.every((id) => lines.includes(id)) && lines;
      },
      { timeoutMs: 30_000, what: 'every accepted call to have run' },
    );
    const duplicates = runs.length - new Set(runs).size;
    t.diagnostic(
      `accepted ${accepted.length}, ran before the kill ${ranBefore}, lost 0, run twice ${duplicates}`,
    );
    assert.ok(
      duplicates <= 4,
      `at most the calls in flight ran twice (max_inflight 4): ${duplicates}`,
    );
    // Every call ran; a call run again after the restart may still be finishing.
    for (const id of accepted) {
      await waitFor(
        async () =>
          (
            JSON.parse(
              (await request(`${second.url}/system/calls/${id}`, { headers: systemAuth })).text,
            ) as CallRecord
          ).state === 'succeeded',
        { timeoutMs: 10_000, what: `call ${id} to be recorded succeeded` },
      );
    }
  });

  it("runs calls on the hub's replicas directly, under max_inflight and in the gateway's metrics", async (t) => {
    const dir = makeTempDir('fnbus-async-direct-');
    const stack = writeTallyStack(dir, join(dir, 'tally.txt'), 0, [
      '  single:',
      '    image: fnbus/single',
      `    fprocess: node ${fixture('node-http-server.cjs')}`,
      '    environment:',
      '      mode: http',
      '      max_inflight: 1',
    ]);
    // Calls refused at max_inflight (429) run again until they get the slot.
    const { hub, url } = await startHub(['-f', stack], join(dir, 'state'), {
      ...workerEnv,
      max_retry_attempts: '100',
    });
    t.after(() => stopHub(hub));
    await ready(url, 'single');
    const calls = 12;
    const ids: string[] = [];
    for (let i = 0; i < calls; i++) {
      const res = await request(`${url}/async-function/single/concurrency?ms=50`, {
        method: 'POST',
        body: 'x',
      });
      assert.equal(res.status, 202);
      ids.push(String(res.headers['x-call-id']));
    }
    const records = async () =>
      Promise.all(
        ids.map(async (id) => {
          const res = await request(`${url}/system/calls/${id}`, { headers: systemAuth });
          return JSON.parse(res.text) as CallRecord;
        }),
      );
    await waitFor(
      async () => (await records()).every((r) => r.state !== 'queued' && r.state !== 'running'),
      {
        timeoutMs: 20_000,
        what: 'every call to be settled',
      },
    );
    const name = 'single.openfaas-fn';
    const counts = async () => {
      const metrics = (await request(`${url}/metrics`, { headers: systemAuth })).text;
      const value = (series: string) =>
        Number(metrics.match(new RegExp(`^${series} (\\d+)`, 'm'))?.[1] ?? 0);
      return {
        direct: value(`queue_worker_direct_calls_total\\{function_name="${name}"\\}`),
        ok: value(`gateway_function_invocation_total\\{function_name="${name}",code="200"\\}`),
        refused: value(`gateway_function_invocation_total\\{function_name="${name}",code="429"\\}`),
      };
    };
    const settled = await records();
    assert.deepEqual(
      settled.map((r) => r.state),
      ids.map(() => 'succeeded'),
    );
    // The worker sent them to the replica itself, not through /function, and the gateway counted
    // them as its own: every call that ran, and those refused at the replica's max_inflight of 1
    // (retried by the worker) as 429. (The hub hears a call is over a moment after the worker.)
    await waitFor(
      async () => {
        const { direct, ok, refused } = await counts();
        return ok === calls && direct === ok + refused;
      },
      { what: 'every direct call counted by the gateway' },
    );
    assert.ok((await counts()).direct >= calls);
    // Never two at once in the function: each call answers the most it saw running together.
    const most = await request(`${url}/function/single/concurrency?ms=1`);
    assert.equal(most.text, '1', 'the function never ran two calls at once');
  });
});
