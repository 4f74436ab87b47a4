import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { InsufficientStorageError, UnavailableError, statusOf } from '../../core/errors.js';
import { BullmqQueue } from '../../queue/bullmq/bullmq-queue.js';
import { LocalQueue } from '../../queue/local/local-queue.js';
import { NatsQueue } from '../../queue/nats/nats-queue.js';
import { fillDisk, mountSmallDisk } from '../helpers/disk.js';
import { freePort } from '../helpers/http.js';
import { startNats, startRedis, type RunningServer } from '../helpers/servers.js';
import { makeTempDir } from '../helpers/watchdog.js';
import { queueRequest } from './queue-contract.js';

const randomName = () => `q-${randomBytes(4).toString('hex')}`;
/** A call of about `bytes` (its body). */
const bigCall = (bytes: number) =>
  queueRequest('fn', { Body: Buffer.alloc(bytes, 'a').toString('base64') });

/** Rejects with `type`, answered `status` by the gateway (errors map to HTTP in one place). */
async function rejectsAs(
  work: Promise<unknown>,
  type: typeof InsufficientStorageError | typeof UnavailableError,
  status: number,
) {
  await assert.rejects(work, (error: unknown) => {
    assert.ok(error instanceof type, `a ${type.name}: ${String(error)}`);
    assert.equal(statusOf(error), status);
    return true;
  });
}

describe('a queue that cannot take a call says why: 507 when full, 503 when unreachable', () => {
  for (const kind of ['tmpfs', 'loop'] as const) {
    it(`local: SQLITE_FULL on a full disk (${kind}) is a 507; calls are taken again once room is made`, async (t) => {
      const dir = join(makeTempDir('fnbus-queue-full-'), 'disk');
      const unmount = mountSmallDisk(dir, 4, [kind]);
      if (!unmount) {
        t.skip(`cannot mount a ${kind} file system here (needs root)`);
        return;
      }
      t.after(unmount);
      const queue = new LocalQueue({ file: join(dir, 'queue.db') });
      t.after(() => queue.close());
      await queue.enqueue(queueRequest('fn'));
      const filler = join(dir, 'filler');
      fillDisk(filler);
      await rejectsAs(queue.enqueue(bigCall(256 * 1024)), InsufficientStorageError, 507);
      rmSync(filler);
      const { callId } = await queue.enqueue(bigCall(256 * 1024));
      assert.equal((await queue.status(callId))?.state, 'queued');
    });
  }

  it('local: a closed queue takes nothing (503)', async () => {
    const queue = new LocalQueue({ file: ':memory:' });
    await queue.close();
    await rejectsAs(queue.enqueue(queueRequest('fn')), UnavailableError, 503);
  });

  it('BullMQ: Redis unreachable is a 503, in seconds', async () => {
    const queue = new BullmqQueue({ url: `redis://127.0.0.1:${await freePort()}` });
    try {
      await rejectsAs(queue.enqueue(queueRequest('fn')), UnavailableError, 503);
    } finally {
      await queue.close();
    }
  });

  it('NATS: a server unreachable is a 503', async () => {
    const queue = new NatsQueue({ url: `nats://127.0.0.1:${await freePort()}` });
    try {
      await rejectsAs(queue.enqueue(queueRequest('fn')), UnavailableError, 503);
    } finally {
      await queue.close();
    }
  });

  describe('on servers out of room', () => {
    let redis: RunningServer;
    let nats: RunningServer;
    before(async () => {
      [redis, nats] = await Promise.all([startRedis(), startNats()]);
    });
    after(() => Promise.all([redis.stop(), nats.stop()]));

    it('BullMQ: Redis at its maxmemory (OOM) is a 507', async () => {
      const admin = new Redis(redis.url);
      const queue = new BullmqQueue({ url: redis.url, name: randomName() });
      try {
        await queue.enqueue(queueRequest('fn'));
        await admin.config('SET', 'maxmemory', '1');
        await rejectsAs(queue.enqueue(queueRequest('fn')), InsufficientStorageError, 507);
        await admin.config('SET', 'maxmemory', '0');
        await queue.enqueue(queueRequest('fn'));
      } finally {
        await admin.config('SET', 'maxmemory', '0');
        admin.disconnect();
        await queue.close();
      }
    });

    it('NATS: JetStream at its storage limit is a 507', async () => {
      const name = randomName();
      const queue = new NatsQueue({ url: nats.url, name });
      const nc = await connect({ servers: nats.url });
      try {
        await queue.enqueue(queueRequest('fn'));
        // The work-queue stream, which carries the requests, full at 4 KiB.
        const jsm = await jetstreamManager(nc);
        const info = await jsm.streams.info(name);
        await jsm.streams.update(name, {
          ...info.config,
          max_bytes: 4096,
          discard: DiscardPolicy.New,
        });
        await rejectsAs(queue.enqueue(bigCall(64 * 1024)), InsufficientStorageError, 507);
      } finally {
        await nc.close();
        await queue.close();
      }
    });
  });
});
