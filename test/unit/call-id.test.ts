import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { newCallId } from '../../core/call-id.js';

describe('newCallId', () => {
  it('makes UUIDs of version 7, each new', () => {
    const ids = Array.from({ length: 5000 }, () => newCallId());
    for (const id of ids) {
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
    assert.equal(new Set(ids).size, ids.length);
  });

  it('sorts ids made in later milliseconds after earlier ones, as text', () => {
    const start = Date.parse('2026-12-03T12:00:00Z');
    const ids = Array.from({ length: 300 }, (_, i) => newCallId(start + i));
    assert.deepEqual([...ids].sort(), ids);
    assert.ok(newCallId(start) < newCallId(start + 1));
    // The time is the first 48 bits.
    assert.equal(parseInt(newCallId(start).replace('-', '').slice(0, 12), 16), start);
  });

  it('is as long as a random UUID, so a client sees no difference', () => {
    assert.equal(newCallId().length, randomUUID().length);
  });
});
