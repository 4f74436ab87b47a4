import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { CommandBatch } from '../../queue/bullmq/command-batch.js';
import { startRedis, type RunningServer } from '../helpers/servers.js';

let server: RunningServer;
before(async () => {
  server = await startRedis();
});
after(() => server.stop());

const calls = (info: string, name: string) =>
  Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);

describe("CommandBatch: a turn's one-member writes, one command per key", () => {
  it('sends a turn of writes to a key as one command, before what follows on the connection', async () => {
    const client = new Redis(server.url);
    try {
      await client.config('RESETSTAT');
      const writes = Array.from({ length: 50 }, (_, i) =>
        new CommandBatch(client).write('zadd', 'other', i, `m${i}`),
      );
      const batch = new CommandBatch(client);
      const same = Array.from({ length: 50 }, (_, i) => batch.write('zadd', 'live', i, `m${i}`));
      const named = batch.write('sadd', 'names', 'a');
      assert.equal(same[0]?.stored, same[49]?.stored, 'one reply for the key');
      await same[0]?.sent;
      // Sent after the batch, not waiting for its reply: Redis has the batch by then.
      assert.equal(await client.zcard('live'), 50);
      assert.deepEqual(await Promise.all([same[0]?.stored, named.stored]), [50, 1]);
      await Promise.all(writes.map((write) => write.stored));
      const info = await client.info('commandstats');
      // 50 batches of one write each, and one of 50.
      assert.equal(calls(info, 'zadd'), 51);
      assert.equal(calls(info, 'sadd'), 1);
    } finally {
      client.disconnect();
    }
  });

  it("fails every write of a failed command, and tells it once with the command's members", async () => {
    const client = new Redis(server.url);
    const lost: unknown[][] = [];
    try {
      await client.set('a-string', 'x');
      const batch = new CommandBatch(client, (error, args) => lost.push([error, args]));
      const writes = ['a', 'b', 'c'].map((member) => batch.write('zrem', 'a-string', member));
      const fine = batch.write('zrem', 'a-set', 'a');
      for (const write of writes) await assert.rejects(write.stored, /WRONGTYPE/);
      assert.equal(await fine.stored, 0);
      assert.equal(lost.length, 1);
      assert.deepEqual(lost[0]?.[1], ['a', 'b', 'c']);
      // The next turn is a batch of its own.
      assert.equal(await batch.write('zadd', 'a-set', 1, 'a').stored, 1);
    } finally {
      client.disconnect();
    }
  });
});
