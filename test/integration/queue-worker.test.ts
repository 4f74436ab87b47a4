import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { InvokeRequest, InvokeResult, Invoker } from '../../core/invoker.js';
import { LocalQueue } from '../../queue/local/local-queue.js';
import { defaultRetryPolicy } from '../../core/retry-policy.js';
import { QueueWorker } from '../../queue/worker.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';
import { queueRequest } from './queue-contract.js';

/** Counts the calls it gets and answers 200: the worker's own rules are under test here. */
class CountingInvoker implements Invoker {
  readonly calls: { fn: string; request: InvokeRequest }[] = [];

  invoke(fn: string, request: InvokeRequest): Promise<InvokeResult> {
    this.calls.push({ fn, request });
    return Promise.resolve({ status: 200, headers: {}, body: new Uint8Array(), durationMs: 0 });
  }
}

describe('QueueWorker', () => {
  it('dead-letters a call older than max_age without running it', async () => {
    const queue = new LocalQueue({ file: join(makeTempDir('fnbus-worker-'), 'q.db') });
    const invoker = new CountingInvoker();
    const { callId } = await queue.enqueue(queueRequest('old-fn'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const worker = new QueueWorker({
      queue,
      invoker,
      maxInflight: 4,
      retry: defaultRetryPolicy,
      maxAgeMs: 20,
      callback: { attempts: 1, firstWaitMs: 10, timeoutMs: 1000 },
    });
    const stop = new AbortController();
    const running = worker.run(stop.signal);
    const record = await waitFor(
      async () => {
        const got = await queue.status(callId);
        return got?.state === 'dead-lettered' && got;
      },
      { what: 'the old call to be dead-lettered' },
    );
    assert.match(record.reason ?? '', /older than the maximum age/);
    assert.equal(record.attempts.length, 0);
    assert.equal(invoker.calls.length, 0, 'never run');
    stop.abort();
    await running;
    await queue.close();
  });

  it('replays the request as queued, with X-Retry and X-Retry-Max', async () => {
    const queue = new LocalQueue({ file: join(makeTempDir('fnbus-worker-'), 'q.db') });
    const invoker = new CountingInvoker();
    const req = queueRequest('replay-fn', { CallbackUrl: undefined });
    const { callId } = await queue.enqueue(req);
    const worker = new QueueWorker({
      queue,
      invoker,
      maxInflight: 4,
      retry: { ...defaultRetryPolicy, maxAttempts: 3 },
      maxAgeMs: 0,
      callback: { attempts: 1, firstWaitMs: 10, timeoutMs: 1000 },
    });
    const stop = new AbortController();
    const running = worker.run(stop.signal);
    await waitFor(async () => (await queue.status(callId))?.state === 'succeeded', {
      what: 'the call to run',
    });
    const [call] = invoker.calls;
    assert.equal(call?.fn, 'replay-fn');
    assert.equal(call?.request.method, 'PUT');
    assert.equal(call?.request.path, '/orders/1');
    assert.equal(call?.request.query, 'a=1&b=two');
    assert.equal(Buffer.from(call?.request.body ?? []).toString(), 'the body');
    assert.deepEqual(call?.request.headers['X-Many'], ['one', 'two']);
    assert.equal(call?.request.headers['X-Retry'], '0');
    assert.equal(call?.request.headers['X-Retry-Max'], '2');
    stop.abort();
    await running;
    await queue.close();
  });
});
