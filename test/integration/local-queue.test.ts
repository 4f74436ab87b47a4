import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { LocalQueue } from '../../queue/local/local-queue.js';
import { makeTempDir } from '../helpers/watchdog.js';
import { queueContract, queueRequest } from './queue-contract.js';

queueContract('LocalQueue', () => {
  const file = join(makeTempDir('fnbus-local-queue-'), 'queue.db');
  return Promise.resolve({
    open: (options) => Promise.resolve(new LocalQueue({ file, ...options })),
    // Closing the database without settling is what a kill leaves: the committed state.
    abandon: (queue) => queue.close(),
    close: () => Promise.resolve(),
  });
});

describe('LocalQueue', () => {
  it('opens a database an older fnbus wrote: counts its calls, pages its letters, keeps its keys', async () => {
    const file = join(makeTempDir('fnbus-local-queue-'), 'queue.db');
    // The schema and rows as fnbus kept them before per-function counters, fingerprints and
    // letter summaries.
    const old = new Database(file);
    old.exec(`
      CREATE TABLE calls (call_id TEXT PRIMARY KEY, function TEXT NOT NULL, state TEXT NOT NULL,
        request TEXT, enqueued_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        next_at INTEGER NOT NULL, attempts TEXT NOT NULL DEFAULT '[]',
        redelivered INTEGER NOT NULL DEFAULT 0, queued_at INTEGER NOT NULL,
        prior_attempts INTEGER NOT NULL DEFAULT 0, last_status INTEGER, last_body TEXT,
        reason TEXT);
      CREATE INDEX calls_due ON calls (state, next_at);
      CREATE INDEX calls_function ON calls (function, state);
      CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, call_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL);`);
    const insert = old.prepare(
      `INSERT INTO calls (call_id, function, state, request, enqueued_at, updated_at, next_at,
         queued_at, reason) VALUES (?, 'old', ?, ?, 1, 1, 1, 1, ?)`,
    );
    const letter = queueRequest('old', { Body: Buffer.from('twelve bytes').toString('base64') });
    insert.run('letter', 'dead-lettered', JSON.stringify(letter), 'gave up');
    insert.run('waiting', 'queued', JSON.stringify(queueRequest('old')), null);
    old.close();

    const queue = new LocalQueue({ file });
    try {
      const stats = (await queue.stats()).old;
      assert.equal(stats?.queued, 1);
      assert.equal(stats?.deadLettered, 1);
      const page = await queue.deadLetters({ limit: 10 });
      assert.deepEqual(
        page.items.map((item) => [item.callId, item.request]),
        [['letter', { Method: 'PUT', Path: '/orders/1', QueryString: 'a=1&b=two', BodyBytes: 12 }]],
      );
      const first = await queue.enqueue(queueRequest('old'), { idempotencyKey: 'k' });
      assert.equal(
        (await queue.enqueue(queueRequest('old'), { idempotencyKey: 'k' })).callId,
        first.callId,
      );
      assert.equal((await queue.stats()).old?.queued, 2);
    } finally {
      await queue.close();
    }
  });
});
