import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Consumer, Producer } from 'kafkajs';
import { startKafka, type RunningKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/wait.js';

// The Kafka connector's tests stand on this broker: it must start, serve a consumer group, and
// come back with its data after a kill -9.
describe('the test Kafka broker (test/helpers/kafka.ts)', () => {
  let kafka: RunningKafka;
  let producer: Producer | undefined;
  let consumer: Consumer | undefined;

  before(async () => {
    kafka = await startKafka();
  });
  after(async () => {
    await consumer?.disconnect();
    await producer?.disconnect();
    await kafka?.stop();
  });

  it('serves a consumer group, and keeps topics and offsets through a kill -9', async () => {
    const topic = `fnbus-test-${randomBytes(4).toString('hex')}`;
    await kafka.createTopic(topic, 3);

    const client = kafka.client();
    producer = client.producer();
    await producer.connect();
    await producer.send({
      topic,
      messages: Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: `m${i}` })),
    });

    const groupId = `fnbus-test-${randomBytes(4).toString('hex')}`;
    // disconnect() waits for the fetch in flight, which the broker holds up to maxWaitTimeInMs (5 s).
    const consumerOptions = { groupId, maxWaitTimeInMs: 500 };
    consumer = client.consumer(consumerOptions);
    const received: string[] = [];
    const partitions = new Set<number>();
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ partition, message }) => {
        partitions.add(partition);
        received.push(message.value?.toString() ?? '');
        return Promise.resolve();
      },
    });
    await waitFor(() => new Set(received).size >= 100, {
      timeoutMs: 30_000,
      what: 'the 100 messages',
    });
    // A rebalance before the first commit may hand a message over twice: each at least once.
    assert.deepEqual(
      [...new Set(received)].sort(),
      Array.from({ length: 100 }, (_, i) => `m${i}`).sort(),
    );
    assert.deepEqual([...partitions].sort(), [0, 1, 2]);

    // The consumer is stopped first so that its offsets are committed: after the restart the
    // group must resume after them, not replay the topic.
    await consumer.disconnect();
    await kafka.restart();

    await producer.send({ topic, messages: [{ key: 'after', value: 'after restart' }] });
    const resumed: string[] = [];
    consumer = client.consumer(consumerOptions);
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }) => {
        resumed.push(message.value?.toString() ?? '');
        return Promise.resolve();
      },
    });
    await waitFor(() => resumed.includes('after restart'), {
      timeoutMs: 30_000,
      what: 'the message produced after the restart',
    });
    assert.deepEqual(resumed, ['after restart']);
  });
});
