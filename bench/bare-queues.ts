/**
 * The bare backends, without fnbus: how fast this machine moves `calls` no-op messages through
 * BullMQ (Queue.add + a Worker) or JetStream (publish + a pull consumer that acks), producing
 * and consuming at once. That is the ceiling for the async path on the same backend.
 */
import { randomUUID } from 'node:crypto';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';

const producers = 64;
const concurrency = 128;

/** Messages a second, from the first publish to the last acknowledgement. */
export async function bareRate(backend: string, url: string, calls: number): Promise<number> {
  return backend === 'redis' ? bullmqRate(url, calls) : jetstreamRate(url, calls);
}

async function bullmqRate(url: string, calls: number): Promise<number> {
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  const workerConnection = new Redis(url, { maxRetriesPerRequest: null });
  const name = `bare-${randomUUID()}`;
  const queue = new Queue(name, { connection });
  let done = 0;
  let finished!: () => void;
  const allDone = new Promise<void>((resolve) => (finished = resolve));
  const worker = new Worker(
    name,
    () => {
      if (++done === calls) finished();
      return Promise.resolve();
    },
    { connection: workerConnection, concurrency },
  );
  const startedAt = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: producers }, async () => {
      while (next < calls) {
        next += 1;
        await queue.add('call', { n: next }, { removeOnComplete: true });
      }
    }),
  );
  await allDone;
  const seconds = (performance.now() - startedAt) / 1000;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  workerConnection.disconnect();
  return calls / seconds;
}

async function jetstreamRate(url: string, calls: number): Promise<number> {
  const nc = await connect({ servers: url, noAsyncTraces: true });
  const name = `bare_${randomUUID().replaceAll('-', '')}`;
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name, subjects: [`${name}.>`] });
  await jsm.consumers.add(name, { durable_name: 'bare', ack_policy: AckPolicy.Explicit });
  const js = jetstream(nc);
  const consumer = await js.consumers.get(name, 'bare');
  let done = 0;
  const startedAt = performance.now();
  const consuming = (async () => {
    const messages = await consumer.consume({ max_messages: concurrency });
    for await (const message of messages) {
      message.ack();
      if (++done === calls) break;
    }
  })();
  let next = 0;
  await Promise.all(
    Array.from({ length: producers }, async () => {
      while (next < calls) {
        next += 1;
        await js.publish(`${name}.call`, 'x');
      }
    }),
  );
  await consuming;
  const seconds = (performance.now() - startedAt) / 1000;
  await jsm.streams.delete(name);
  await nc.close();
  return calls / seconds;
}
