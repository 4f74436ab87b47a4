import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttemptOutcome, Settlement } from '../../core/queue.js';
import {
  buriedCall,
  callRecordOf,
  claimedCall,
  queueSettings,
  queuedCall,
  redrivenCall,
  settledCall,
  settlementOf,
  statsOf,
} from '../../queue/call-records.js';

const attempt = (n: number, status?: number, excerpt?: string): AttemptOutcome => ({
  record: { attempt: n, startedAt: new Date(0).toISOString(), durationMs: 1, status },
  ...(excerpt === undefined ? {} : { bodyExcerpt: excerpt }),
});

describe('call records: the state machine every backend stores', () => {
  const running = claimedCall(queuedCall(1000), 2000);

  it('queues a retry with its attempt and answer, a defer with nothing recorded', () => {
    const retried = settledCall(
      running,
      { outcome: 'retry', attempt: attempt(1, 503, 'busy'), delayMs: 500, reason: '503' },
      3000,
    );
    assert.equal(retried.state, 'queued');
    assert.equal(retried.nextAttemptAt, 3500);
    assert.equal(retried.attempts.length, 1);
    assert.equal(retried.lastStatus, 503);
    assert.equal(retried.lastBodyExcerpt, 'busy');
    assert.equal(retried.reason, '503');

    const deferred = settledCall(
      claimedCall(retried, 4000),
      { outcome: 'defer', delayMs: 100 },
      5000,
    );
    assert.equal(deferred.state, 'queued');
    assert.equal(deferred.nextAttemptAt, 5100);
    assert.deepEqual(deferred.attempts, retried.attempts);
    assert.equal(deferred.lastStatus, 503, 'a defer keeps the last answer');
    // A retry without an answer keeps the last one too.
    const noAnswer = settledCall(
      claimedCall(retried, 6000),
      { outcome: 'retry', attempt: attempt(2), delayMs: 1, reason: 'no answer' },
      7000,
    );
    assert.equal(noAnswer.lastStatus, 503);
    assert.equal(noAnswer.attempts.length, 2);
  });

  it('finishes an ack succeeded on 2xx, failed otherwise; dead-letters with its reason', () => {
    const ack = (status: number): Settlement => ({ outcome: 'ack', attempt: attempt(1, status) });
    assert.equal(settledCall(running, ack(204), 3000).state, 'succeeded');
    const failed = settledCall(running, ack(404), 3000);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.reason, undefined);
    assert.equal(failed.nextAttemptAt, undefined);
    const dead = settledCall(running, { outcome: 'dead-letter', reason: 'too old' }, 3000);
    assert.equal(dead.state, 'dead-lettered');
    assert.equal(dead.reason, 'too old');
    assert.deepEqual(dead.attempts, [], 'no attempt made, none recorded');
  });

  it('redrives a letter as a fresh round; buries a call made elsewhere', () => {
    const dead = settledCall(
      running,
      { outcome: 'dead-letter', attempt: attempt(1, 500), reason: 'gave up' },
      3000,
    );
    const again = redrivenCall(dead, 9000);
    assert.equal(again.state, 'queued');
    assert.equal(again.queuedAt, 9000);
    assert.equal(again.priorAttempts, 1);
    assert.equal(again.reason, undefined);
    const record = callRecordOf('id', 'fn', 1000, again);
    assert.equal(record.nextAttemptAt, new Date(9000).toISOString());
    assert.equal(record.enqueuedAt, new Date(1000).toISOString());

    const buried = buriedCall({ request: {} as never, attempts: [], reason: 'x' }, 5);
    assert.equal(buried.state, 'dead-lettered');
    assert.equal(callRecordOf('id', 'fn', 5, buried).nextAttemptAt, undefined);
  });

  it('turns a handler that throws into a defer of a second', async () => {
    const settlement = await settlementOf(
      () => Promise.reject(new Error('bug')),
      {} as never,
      {} as never,
    );
    assert.deepEqual(settlement, { outcome: 'defer', delayMs: 1000 });
  });

  it('makes stats from tallies, and fills every default once', () => {
    const stats = statsOf(
      [
        ['a', { live: 5, running: 2, dead: 1, oldestQueuedAt: 1000 }],
        ['constructor', { live: 1, running: 1, dead: 0, oldestQueuedAt: 1000 }],
        ['gone', { live: 0, running: 0, dead: 0 }],
      ],
      4000,
    );
    assert.deepEqual(stats.a, { queued: 3, running: 2, deadLettered: 1, oldestQueuedAgeMs: 3000 });
    const own = new Map(Object.entries(stats));
    assert.equal(own.get('constructor')?.oldestQueuedAgeMs, 0, 'none waits: no age');
    assert.equal(own.has('gone'), false);
    assert.deepEqual(queueSettings({ maxQueuedCalls: 5 }), {
      retentionMs: 24 * 3600_000,
      idempotencyWindowMs: 24 * 3600_000,
      maxQueuedCalls: 5,
      leaseMs: 30_000,
    });
  });
});
