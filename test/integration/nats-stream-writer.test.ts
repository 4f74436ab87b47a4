import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import {
  ClosedConnectionError,
  NoRespondersError,
  connect,
  headers,
} from '@nats-io/transport-node';
import { RecordBucket } from '../../queue/nats/record-bucket.js';
import { isStale } from '../../queue/nats/stored-call.js';
import { StreamWriter } from '../../queue/nats/stream-writer.js';
import { startNats } from '../helpers/servers.js';

const server = await startNats();
after(() => server.stop());

const randomName = () => `w-${randomBytes(4).toString('hex')}`;

describe('StreamWriter: JetStream writes as core publishes', () => {
  it('answers as js.publish and the KV client do: acks, deduplication, compare-and-set', async () => {
    const nc = await connect({ servers: server.url });
    try {
      const name = randomName();
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name, subjects: [`${name}.>`] });
      const writer = new StreamWriter(nc);
      const dedup = headers();
      dedup.set('Nats-Msg-Id', 'one');
      // Many at once, as a turn of the event loop sends them: each gets its own answer.
      const acks = await Promise.all(
        Array.from({ length: 100 }, (_, i) => writer.publish(`${name}.a`, `m${i}`)),
      );
      assert.deepEqual(
        acks.map((ack) => ack.seq).sort((a, b) => a - b),
        Array.from({ length: 100 }, (_, i) => i + 1),
      );
      const first = await writer.publish(`${name}.a`, 'x', dedup);
      const again = await writer.publish(`${name}.a`, 'x', dedup);
      assert.deepEqual(again, { ...first, duplicate: true });
      await assert.rejects(writer.publish('nobody.listens', 'x'), NoRespondersError);

      const bucketName = randomName();
      const kv = await new Kvm(nc).create(bucketName, { history: 1 });
      const bucket = new RecordBucket(kv, bucketName, writer);
      const revision = await bucket.create('k', 'v1');
      assert.equal((await kv.get('k'))?.string(), 'v1');
      await assert.rejects(bucket.create('k', 'v2'), (error) => isStale(error));
      const updated = await bucket.update('k', 'v2', revision);
      await assert.rejects(bucket.update('k', 'v3', revision), JetStreamApiError);
      assert.equal(await bucket.put('other', 'x').then(Number.isInteger), true);
      await bucket.delete('k', updated);
      assert.equal((await kv.get('k'))?.operation, 'DEL');
      // Created again over its deletion marker, as KV.create does.
      const recreated = await bucket.create('k', 'v4');
      assert.equal((await kv.get('k'))?.revision, recreated);

      const stream = `KV_${bucketName}`;
      assert.equal(await writer.deleteMessage(stream, recreated), true);
      assert.equal(await writer.deleteMessage(stream, recreated), false);
      assert.equal(await kv.get('k'), null);
    } finally {
      await nc.close();
    }
  });

  it('fails what is waiting when the connection closes, and refuses writes after', async () => {
    const nc = await connect({ servers: server.url });
    const writer = new StreamWriter(nc);
    const name = randomName();
    await (await jetstreamManager(nc)).streams.add({ name, subjects: [`${name}.>`] });
    const waiting = writer.publish(`${name}.a`, 'x');
    await nc.close();
    await assert.rejects(waiting, ClosedConnectionError);
    await assert.rejects(writer.publish(`${name}.a`, 'x'), ClosedConnectionError);
  });
});
