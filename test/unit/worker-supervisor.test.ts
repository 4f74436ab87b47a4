import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../core/logger.js';
import type { HubThread } from '../../cli/hub-thread.js';
import { WorkerSupervisor } from '../../cli/worker-supervisor.js';
import { waitFor } from '../helpers/wait.js';

/** A stand-in for a worker thread: the test ends it, or makes it stuck. */
class FakeThread implements HubThread {
  readonly ended: Promise<unknown>;
  end!: (why: unknown) => void;
  stuck = false;
  terminated = false;
  constructor() {
    this.ended = new Promise((resolve) => (this.end = resolve));
  }
  metrics(): Promise<string> {
    return this.stuck ? new Promise(() => {}) : Promise.resolve('thread_metric 1\n');
  }
  stop(): Promise<void> {
    if (this.stuck) return new Promise(() => {});
    this.end(0);
    return Promise.resolve();
  }
  terminate(): Promise<void> {
    this.terminated = true;
    this.end(1);
    return Promise.resolve();
  }
}

/**
 * A supervisor over fake threads, with the times each was started; `firstRestartMs` long enough
 * for a test to see the thread down between two starts (it is jittered down to half).
 */
function supervise(failStarts = 0, firstRestartMs = 20) {
  const threads: FakeThread[] = [];
  const startedAt: number[] = [];
  let failures = failStarts;
  const supervisor = new WorkerSupervisor(
    () => {
      startedAt.push(Date.now());
      if (failures-- > 0)
        return Promise.reject(Object.assign(new Error('x'), { code: 'SQLITE_BUSY' }));
      const thread = new FakeThread();
      threads.push(thread);
      return Promise.resolve(thread);
    },
    {
      logger: silentLogger,
      firstRestartMs,
      maxRestartMs: Math.max(80, firstRestartMs),
      metricsTimeoutMs: 50,
    },
  );
  return { supervisor, threads, startedAt };
}

describe('WorkerSupervisor', () => {
  it('restarts a thread that ends on its own, reporting it down meanwhile', async () => {
    const { supervisor, threads } = supervise(0, 600);
    assert.equal(supervisor.health(), undefined, 'healthy before the first start');
    await supervisor.start();
    threads[0]!.end({ code: 'SQLITE_FULL' });
    await waitFor(() => supervisor.health(), { what: 'the worker reported down' });
    assert.equal(supervisor.health(), 'queue worker down (SQLITE_FULL), restarting');
    assert.equal(await supervisor.metrics(), undefined, 'no thread, no thread metrics');
    await waitFor(() => threads.length === 2 && supervisor.health() === undefined, {
      what: 'a second thread, healthy',
    });
    assert.equal(await supervisor.metrics(), 'thread_metric 1\n');
    await supervisor.stop(1000);
    assert.equal(supervisor.health(), 'stopping');
  });

  it('waits longer after each failure in a row, up to the cap', async () => {
    const { supervisor, threads, startedAt } = supervise(5);
    await supervisor.start();
    await waitFor(() => threads.length === 1, { what: 'a thread after 5 failed starts' });
    const waits = startedAt.slice(1).map((at, i) => at - startedAt[i]!);
    // 20, 40, 80, 80, 80 ms, each with equal jitter: half of it at least (timers fire late,
    // never early).
    for (const [i, wait] of waits.entries()) {
      assert.ok(wait >= Math.min(80, 20 * 2 ** i) / 2 - 2, `wait ${i}: ${wait} ms`);
    }
    assert.ok(waits[4]! < 400, `capped: ${waits[4]} ms`);
    await supervisor.stop(1000);
  });

  it('answers metrics without a stuck thread, and terminates it when it does not stop in time', async () => {
    const { supervisor, threads } = supervise();
    await supervisor.start();
    const thread = threads[0]!;
    thread.stuck = true;
    assert.equal(await supervisor.metrics(), undefined);
    const asked = Date.now();
    await supervisor.stop(100);
    assert.ok(Date.now() - asked < 1000);
    assert.ok(thread.terminated);
    assert.equal(supervisor.health(), 'stopping');
  });
});
