import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { claimedCall, queuedCall, settledCall } from '../../queue/call-records.js';
import {
  isoOf,
  msOf,
  progressOf,
  withProgress,
  type StoredCall,
} from '../../queue/nats/stored-call.js';

describe("NATS stored calls: records' times and fields", () => {
  it('formats times exactly as toISOString, whether their second is cached or not', () => {
    const now = Date.now();
    const times = [0, 999, 1000, now, now + 1, now + 999, now + 1000, 253402300799999];
    for (let i = 0; i < 2000; i += 1) times.push(Math.floor(Math.random() * 253402300799999));
    for (let i = 0; i < 2000; i += 1) times.push(now + i * 7);
    for (const ms of times) {
      assert.equal(isoOf(ms), new Date(ms).toISOString(), `isoOf(${ms})`);
      assert.equal(isoOf(ms), new Date(ms).toISOString(), `isoOf(${ms}), cached`);
    }
    assert.throws(() => isoOf(Number.NaN), RangeError); // as toISOString
    assert.equal(isoOf(-1), new Date(-1).toISOString());
    assert.equal(isoOf(253402300800000), new Date(253402300800000).toISOString());
  });

  it('parses times exactly as Date.parse, odd texts included', () => {
    const now = Date.now();
    for (let i = 0; i < 2000; i += 1) {
      const ms = i % 2 ? now + i * 13 : Math.floor(Math.random() * 253402300799999);
      const iso = new Date(ms).toISOString();
      assert.equal(msOf(iso), ms, iso);
      assert.equal(msOf(iso), ms, `${iso}, cached`);
    }
    const second = new Date(now).toISOString().slice(0, 20);
    isoOf(now); // its second cached
    const odd = ['garbage', '', `${second}1234Z`, `${second}12Z`, `${second.slice(0, 19)}Z`];
    for (const fraction of [' 12', '+12', '-12', '1e1', '0x1', '12 ', '1.5']) {
      odd.push(`${second}${fraction}Z`);
    }
    odd.push('2026-12-03T16:55:35.123+01:00', '2026-12-03');
    for (const text of odd) assert.deepEqual(msOf(text), Date.parse(text), JSON.stringify(text));
  });

  it('writes the state machine into a record, keeping its other fields as they were', () => {
    const letter: StoredCall = {
      ...withProgress(
        { callId: 'c1', function: 'fn', enqueuedAt: isoOf(1000), messageId: 'c1~m' },
        queuedCall(1000),
      ),
      letterSeq: 7,
      letter: { Method: 'POST', Path: '/', QueryString: '', BodyBytes: 3 },
    };
    assert.equal(letter.nextAttemptAt, isoOf(1000));
    const running = withProgress(letter, claimedCall(progressOf(letter), 2000));
    assert.deepEqual(JSON.parse(JSON.stringify(running)), {
      callId: 'c1',
      function: 'fn',
      enqueuedAt: isoOf(1000),
      messageId: 'c1~m',
      state: 'running',
      attempts: [],
      queuedAt: isoOf(1000),
      priorAttempts: 0,
      updatedAt: isoOf(2000),
      letterSeq: 7,
      letter: { Method: 'POST', Path: '/', QueryString: '', BodyBytes: 3 },
    });
    const record = { attempt: 1, startedAt: isoOf(2000), durationMs: 1, status: 500 };
    const failed = withProgress(
      running,
      settledCall(progressOf(running), { outcome: 'ack', attempt: { record } }, 3000),
    );
    assert.equal(failed.state, 'failed');
    assert.equal(failed.lastStatus, 500);
    assert.deepEqual(failed.attempts, [record]);
    assert.equal('nextAttemptAt' in failed, false);
    assert.equal(failed.letterSeq, 7);
    const json = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
    assert.deepEqual(
      json(progressOf(failed)),
      json(settledCall(progressOf(running), { outcome: 'ack', attempt: { record } }, 3000)),
    );
  });
});
