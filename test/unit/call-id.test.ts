import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newCallId } from '../../core/call-id.js';

describe('newCallId', () => {
  it('makes UUIDs of version 7, each new, that sort in the order they were made', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) {
      ids.push(newCallId());
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    for (const id of ids) {
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual([...ids].sort(), ids);
  });
});
