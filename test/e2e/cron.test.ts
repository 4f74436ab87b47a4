import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DeadLetter, DeadLetterPage } from '../../core/queue.js';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { deployCron, firings, recorderProcess } from '../helpers/cron.js';
import { request } from '../helpers/http.js';
import { hubCliEnv, startHub, stopHub, systemAuth } from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

/** Fast map rebuilds, so that a function deployed now is scheduled within a second. */
const env = { rebuild_interval: '500ms' };

describe('cron connector in fnbus up', () => {
  it('fires a function deployed after it started, at the scheduled seconds, with the cron headers', async (t) => {
    const dir = makeTempDir('fnbus-cron-');
    const file = join(dir, 'firings');
    const { hub, url } = await startHub([], join(dir, 'state'), env);
    t.after(() => stopHub(hub));
    await deployCron(url, 'tick', recorderProcess(file), { schedule: '*/2 * * * * *' });

    await waitFor(() => firings(file).length >= 3, { timeoutMs: 20_000, what: '3 firings' });
    const seen = firings(file);
    for (const firing of seen) {
      assert.equal(firing.topic, 'cron-function');
      assert.equal(firing.connector, 'cron-connector');
      assert.equal(firing.schedule, '*/2 * * * * *');
      assert.equal(firing.scheduledMs % 2000, 0, 'on an even second');
      const lateMs = firing.ranMs - firing.scheduledMs;
      assert.ok(lateMs >= 0 && lateMs < 1000, `ran ${lateMs} ms after its slot`);
    }
    const slots = seen.map((firing) => firing.scheduledMs);
    assert.equal(new Set(slots).size, slots.length, 'each slot once');
    assert.equal(slots[1]! - slots[0]!, 2000);

    const topics = await runCli(['topics', '--gateway', url], hubCliEnv);
    assert.equal(topics.code, 0, topics.stderr);
    assert.match(topics.stdout, /^TOPIC +FUNCTIONS\ncron-function +tick\.openfaas-fn\n$/);
  });

  it('fires a function at zero replicas (the gateway scales it up)', async (t) => {
    const dir = makeTempDir('fnbus-cron-');
    const file = join(dir, 'firings');
    const { hub, url } = await startHub([], join(dir, 'state'), env);
    t.after(() => stopHub(hub));
    await deployCron(url, 'sleeper', recorderProcess(file), { schedule: '@every 2s' });
    const scaled = await request(`${url}/system/scale-function/sleeper`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...systemAuth },
      body: JSON.stringify({ serviceName: 'sleeper', replicas: 0 }),
    });
    assert.ok(scaled.status < 300, scaled.text);
    await waitFor(
      async () => {
        const res = await request(`${url}/system/function/sleeper`, { headers: systemAuth });
        return (JSON.parse(res.text) as { availableReplicas: number }).availableReplicas === 0;
      },
      { what: 'zero replicas' },
    );
    const before = firings(file).length;
    await waitFor(() => firings(file).length > before, {
      timeoutMs: 15_000,
      what: 'a firing at zero replicas',
    });
  });

  it('skips a firing while the last one still runs, when asked', async (t) => {
    const dir = makeTempDir('fnbus-cron-');
    const file = join(dir, 'firings');
    const { hub, url } = await startHub([], join(dir, 'state'), env);
    t.after(() => stopHub(hub));
    await deployCron(url, 'slow', recorderProcess(file, 2.5), {
      schedule: '@every 1s',
      'fnbus.cron.overlap': 'skip',
    });
    await waitFor(() => firings(file).length >= 3, { timeoutMs: 20_000, what: '3 firings' });
    const runs = firings(file).map((firing) => firing.ranMs);
    for (let i = 1; i < runs.length; i++) {
      assert.ok(
        runs[i]! - runs[i - 1]! >= 2500,
        `run ${i} started ${runs[i]! - runs[i - 1]!} ms after the last`,
      );
    }
  });

  it('keeps a firing the function kept failing as a dead letter, which a redrive runs again', async (t) => {
    const dir = makeTempDir('fnbus-cron-');
    const file = join(dir, 'firings');
    const { hub, url } = await startHub([], join(dir, 'state'), {
      ...env,
      max_retry_attempts: '2',
      initial_retry_wait: '100ms',
    });
    t.after(() => stopHub(hub));
    await deployCron(
      url,
      'failing',
      `sh -c 'echo "$Http_X_Call_Id" >> ${file}; echo broken; exit 1'`,
      {
        schedule: '@every 1s',
      },
    );
    const summaries = await waitFor(
      async () => {
        const res = await request(`${url}/system/dead-letters?function=failing.openfaas-fn`, {
          headers: systemAuth,
        });
        const page = JSON.parse(res.text) as DeadLetterPage;
        return page.items.length > 0 && page.items;
      },
      { timeoutMs: 20_000, what: 'a dead letter' },
    );
    const letter = JSON.parse(
      (
        await request(`${url}/system/dead-letters/${summaries[0]!.callId}`, {
          headers: systemAuth,
        })
      ).text,
    ) as DeadLetter;
    assert.equal(letter.state, 'dead-lettered');
    assert.equal(letter.lastStatus, 500);
    assert.match(letter.lastBodyExcerpt ?? '', /broken/);
    assert.match(letter.reason ?? '', /500 after 2 attempts/);
    assert.equal(letter.attempts.length, 2);
    assert.deepEqual(letter.request.Header['X-Topic'], ['cron-function']);
    assert.deepEqual(letter.request.Header['X-Connector'], ['cron-connector']);

    const listed = await runCli(['dlq', 'list', '--gateway', url], hubCliEnv);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(letter.callId));
    const redriven = await runCli(['dlq', 'redrive', letter.callId, '--gateway', url], hubCliEnv);
    assert.equal(redriven.code, 0, redriven.stderr);
    await waitFor(() => readFileSync(file, 'utf8').includes(letter.callId), {
      what: 'the redriven call to run',
    });
  });

  it('skips a firing while the last one’s async call is queued or running, when asked', async (t) => {
    const dir = makeTempDir('fnbus-cron-');
    const file = join(dir, 'firings');
    const { hub, url } = await startHub([], join(dir, 'state'), env);
    t.after(() => stopHub(hub));
    await deployCron(url, 'slow-async', recorderProcess(file, 2.5), {
      schedule: '@every 1s',
      'fnbus.cron.overlap': 'skip',
      'fnbus.connector.invocation': 'async',
    });
    await waitFor(() => firings(file).length >= 3, { timeoutMs: 25_000, what: '3 firings' });
    const runs = firings(file).map((firing) => firing.ranMs);
    for (let i = 1; i < runs.length; i++) {
      const gap = runs[i]! - runs[i - 1]!;
      assert.ok(gap >= 2500, `run ${i} started ${gap} ms after the last`);
    }
  });

  it('catches up the slots missed while the hub was down, when asked', async () => {
    const dir = makeTempDir('fnbus-cron-');
    const file = join(dir, 'firings');
    const stateDir = join(dir, 'state');
    const first = await startHub([], stateDir, env);
    await deployCron(first.url, 'catcher', recorderProcess(file), {
      schedule: '@every 1s',
      'fnbus.cron.missed': 'catch-up',
    });
    await waitFor(() => firings(file).length >= 2, { timeoutMs: 15_000, what: '2 firings' });
    await stopHub(first.hub);
    const stoppedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const second = await startHub([], stateDir, env, first.port);
    try {
      await waitFor(
        () =>
          firings(file).some((firing) => firing.scheduledMs > stoppedAt + 3000 && firing.ranMs > 0),
        { timeoutMs: 20_000, what: 'firings after the restart' },
      );
      const slots = [...new Set(firings(file).map((firing) => firing.scheduledMs))].sort();
      for (let i = 1; i < slots.length; i++) {
        assert.equal(slots[i]! - slots[i - 1]!, 1000, 'no slot missing across the downtime');
      }
    } finally {
      await stopHub(second.hub);
    }
  });
});
