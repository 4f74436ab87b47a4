import { setTimeout as sleep } from 'node:timers/promises';
import {
  Kafka,
  logLevel,
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type Producer,
  type KafkaConfig as ClientConfig,
  type logCreator,
} from 'kafkajs';
import { Counter, Gauge, type Registry } from 'prom-client';
import { ConfigError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { Backoff } from '../../core/retry-policy.js';
import type { SourceEvent, SourceReply } from '../../core/source.js';
import { DeliveryError, type InvokerResponse } from '../sdk/controller.js';
import type { ConnectorSource } from '../sdk/run-connector.js';
import type { TopicMap, TopicTarget } from '../sdk/topic-map.js';
import { kafkaTopicName, type KafkaSettings } from './kafka-kind.js';
import { PartitionOffsets } from './partition-offsets.js';
import { batchBody, batchResults, batchSizeOf } from './record-batches.js';
import { recordEvent } from './record-event.js';

/**
 * A function's order of delivery (`fnbus.kafka.order`): `partition` (default) one record of a
 * partition at a time, in offset order; `key` each key's records in order, different keys of a
 * partition at once; `none` every record at once.
 */
export const OrderAnnotation = 'fnbus.kafka.order';
export type KafkaOrder = 'partition' | 'key' | 'none';

export function orderOf(target: TopicTarget): KafkaOrder {
  const order = target.annotations[OrderAnnotation]?.trim();
  return order === 'key' || order === 'none' ? order : 'partition';
}

export interface KafkaSourceOptions {
  settings: KafkaSettings;
  topicMap: () => TopicMap | undefined;
  logger: Logger;
  /** How often the subscription is checked against the topic map and the brokers' topics. */
  rebuildIntervalMs: number;
  /** The connector's calls in flight at once (max_inflight): records in hand are kept near it. */
  maxInflight: number;
  registry?: Registry;
}

/** Per topic and partition: records taken, the commit point, and how far it is behind. */
interface KafkaMetrics {
  consumed: Counter<'topic' | 'partition'>;
  committed: Gauge<'topic' | 'partition'>;
  lag: Gauge<'topic' | 'partition'>;
}

function kafkaMetrics(registry: Registry): KafkaMetrics {
  const labelNames = ['topic', 'partition'] as const;
  return {
    consumed: new Counter({
      name: 'fnbus_kafka_records_consumed_total',
      help: 'Records taken from Kafka, per topic and partition',
      labelNames,
      registers: [registry],
    }),
    committed: new Gauge({
      name: 'fnbus_kafka_committed_offset',
      help: 'The next offset to commit (every record before it answered), per topic and partition',
      labelNames,
      registers: [registry],
    }),
    lag: new Gauge({
      name: 'fnbus_kafka_lag',
      help: "Records behind the partition's end, from the commit point",
      labelNames,
      registers: [registry],
    }),
  };
}

type Emit = (event: SourceEvent) => Promise<unknown>;

/** How a failed delivery is waited on before it is tried again (the record's commit waits too). */
const redeliveryBackoff = { minWaitMs: 500, maxWaitMs: 30_000 };
/** Partitions whose batches run at once (each bounded by the connector's max_inflight). */
const partitionsAtOnce = 32;
/** How often a long batch tells the group it is alive and commits what is done. */
const heartbeatEveryMs = 1000;

/**
 * A Kafka consumer group as a connector's source. It subscribes to the configured topics, or to
 * every topic some function's annotation names and the brokers have, and follows the topic map
 * as functions come and go (a new subscription restarts the group's consumer: its records in
 * hand finish first).
 *
 * At least once: a record's offset is resolved, and so committed, only once every function it
 * reaches has answered (or its failure is in the dead-letter store) and so has every earlier
 * record of its partition; records run at once within that rule, in each function's order
 * (`fnbus.kafka.order`). A delivery that fails without being kept is tried again with backoff
 * until it succeeds or the connector stops; a stopped or killed connector's records not known
 * done are delivered again by the group. A record the functions keep failing is dead-lettered
 * by the controller and passed: no record stalls its partition for good.
 */
export class KafkaSource implements ConnectorSource {
  readonly #options: KafkaSourceOptions;
  readonly #logger: Logger;
  readonly #metrics: KafkaMetrics | undefined;
  /** Records taken and not yet done, over all partitions, and who waits for room. */
  #inHand = 0;
  /** The largest batch size a function asked for (fnbus.kafka.batch) so far. */
  #largestBatch = 0;
  readonly #roomWaiters: (() => void)[] = [];

  constructor(options: KafkaSourceOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ group: options.settings.group });
    this.#metrics = options.registry && kafkaMetrics(options.registry);
  }

  async start(emit: Emit, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const kafka = new Kafka(this.#clientConfig());
    // No retries of its own: the loop below backs off, and a stop is not held by them.
    const admin = kafka.admin({ retry: { retries: 0 } });
    const { replyTopic, deadLetterTopic } = this.#options.settings;
    const producer =
      replyTopic || deadLetterTopic ? kafka.producer({ allowAutoTopicCreation: false }) : undefined;
    const writer = producer && new RecordWriter(producer);
    let consumer: { topics: string; consumer: Consumer; crashed: boolean } | undefined;
    const backoff = new Backoff({ minWaitMs: 250, maxWaitMs: 10_000 });
    const announced = new Set<string>();
    try {
      while (!signal.aborted) {
        let waitMs = Math.min(this.#options.rebuildIntervalMs, 2000);
        try {
          const topics = await this.#subscribable(admin, announced);
          const key = topics.join(',');
          if (consumer && (consumer.topics !== key || consumer.crashed)) {
            await consumer.consumer.disconnect();
            consumer = undefined;
          }
          if (!consumer && topics.length > 0) {
            consumer = {
              topics: key,
              consumer: await this.#consume(kafka, topics, emit, signal, writer),
              crashed: false,
            };
            const running = consumer;
            running.consumer.on(running.consumer.events.CRASH, ({ payload }) => {
              if (!payload.restart) running.crashed = true;
            });
            this.#logger.info({ topics }, 'kafka connector subscribed');
          }
          backoff.reset();
        } catch (error) {
          if (signal.aborted) break;
          // Credentials the brokers refuse stay refused: the connector stops, saying so.
          if (error instanceof Error && error.name === 'KafkaJSSASLAuthenticationError') {
            throw new ConfigError([
              `sasl_mechanism: the brokers refused the credentials (${error.message})`,
            ]);
          }
          waitMs = backoff.next();
          this.#logger.warn({ err: error, retryInMs: waitMs }, 'kafka brokers not reached');
        }
        await sleep(waitMs, undefined, { signal }).catch(() => {});
      }
    } finally {
      await consumer?.consumer.disconnect().catch(() => {});
      await producer?.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
    }
  }

  /** The topics to subscribe to: configured or named by functions, and present on the brokers. */
  async #subscribable(admin: Admin, announced: Set<string>): Promise<string[]> {
    const { settings, topicMap } = this.#options;
    const wanted =
      settings.topics.length > 0
        ? settings.topics
        : (topicMap()?.topics() ?? []).filter((topic) => kafkaTopicName.test(topic));
    if (wanted.length === 0) return [];
    await admin.connect();
    const present = new Set(await admin.listTopics());
    const missing = wanted.filter((topic) => !present.has(topic));
    const news = missing.filter((topic) => !announced.has(topic));
    if (news.length > 0)
      this.#logger.info({ topics: news }, 'not on the brokers (yet): not subscribed');
    announced.clear();
    for (const topic of missing) announced.add(topic);
    return wanted.filter((topic) => present.has(topic)).sort();
  }

  async #consume(
    kafka: Kafka,
    topics: string[],
    emit: Emit,
    stop: AbortSignal,
    writer: RecordWriter | undefined,
  ): Promise<Consumer> {
    const { settings } = this.#options;
    const consumer = kafka.consumer({
      groupId: settings.group,
      maxBytes: settings.maxBytes,
      allowAutoTopicCreation: false,
      // A replica killed holds its partitions this long before the group moves them.
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      // A stop waits out the fetch in flight: short, so that stopping is quick.
      maxWaitTimeInMs: 1000,
      retry: { restartOnFailure: () => Promise.resolve(!stop.aborted) },
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topics, fromBeginning: settings.initialOffset === 'oldest' });
      await consumer.run({
        autoCommit: true,
        autoCommitInterval: heartbeatEveryMs,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: partitionsAtOnce,
        eachBatch: (payload) => this.#batch(payload, emit, stop, writer),
      });
    } catch (error) {
      await consumer.disconnect().catch(() => {});
      throw error;
    }
    return consumer;
  }

  /**
   * One partition's batch: every record to its functions, each function's deliveries in its
   * order's lanes, the partition's commit point resolved as records finish without a gap.
   */
  async #batch(
    payload: EachBatchPayload,
    emit: Emit,
    stop: AbortSignal,
    writer: RecordWriter | undefined,
  ): Promise<void> {
    const { batch } = payload;
    // kafkajs's callbacks, called through the payload they belong to.
    const isRunning = () => payload.isRunning();
    const isStale = () => payload.isStale();
    const resolveOffset = (offset: string) => payload.resolveOffset(offset);
    const offsets = new PartitionOffsets();
    const lanes = new Map<string, Promise<boolean>>();
    /** Runs `deliver` after the lane's last delivery; a lane whose delivery failed (the connector stops) goes no further. */
    const inLane = (lane: string, deliver: () => Promise<boolean>) => {
      const last = lanes.get(lane);
      const delivered = last ? last.then((ok) => (ok ? deliver() : false)) : deliver();
      lanes.set(lane, delivered);
      return delivered;
    };
    /** Each batching function's records not sent yet. */
    const chunks = new Map<string, Chunk>();
    // A function's batches go one after the other: its records in partition order.
    const sendChunk = (chunk: Chunk) => {
      const lane = `${chunk.target.function}\u0000batch`;
      void inLane(lane, async () => {
        const done = await this.#deliverChunk(emit, chunk, stop, writer);
        done.forEach((ok, i) => chunk.done[i]!(ok));
        return done.every(Boolean);
      });
    };
    const labels = { topic: batch.topic, partition: String(batch.partition) };
    const metrics = this.#metrics;
    /** The last offset resolved, for the metrics (set each second and at the end, not a record). */
    let passedOffset: string | undefined;
    const report = () => {
      if (!metrics || passedOffset === undefined) return;
      const next = BigInt(passedOffset) + 1n;
      metrics.committed.set(labels, Number(next));
      metrics.lag.set(labels, Number(BigInt(batch.highWatermark) - next));
    };
    // Alive to the group, and what is done committed, while a long batch runs: a crash
    // redelivers about a second's work, not the batch's.
    const tick = () => {
      void payload.heartbeat().catch(() => {});
      if (!payload.isStale()) void payload.commitOffsetsIfNecessary().catch(() => {});
      report();
    };
    /** Records taken and not yet done; the batch ends once none is left. */
    let outstanding = 0;
    let allDone: (() => void) | undefined;
    let failure: Error | undefined;
    const beating = setInterval(tick, heartbeatEveryMs);
    // The batch's functions, each with its batch size and order, read once: one topic, one map.
    const targets = (this.#options.topicMap()?.match(batch.topic) ?? []).map((target) => ({
      target,
      size: batchSizeOf(target.annotations),
      order: orderOf(target),
    }));
    for (const { size } of targets) this.#largestBatch = Math.max(this.#largestBatch, size);
    const { replyTopic } = this.#options.settings;
    let taken = 0;
    try {
      for (const message of batch.messages) {
        if (this.#inHand >= this.#roomFor()) {
          // No more in hand than the calls can take soon: what waits costs memory and collection.
          for (const chunk of chunks.values()) sendChunk(chunk);
          chunks.clear();
          await this.#room(stop);
        }
        if (!isRunning() || isStale() || stop.aborted) break;
        this.#inHand += 1;
        taken += 1;
        outstanding += 1;
        offsets.take(message.offset);
        const event = recordEvent(batch.topic, batch.partition, message);
        if (writer && replyTopic) {
          event.reply = (answer) => writer.reply(replyTopic, event, message.key, answer);
        }
        const deliveries = targets.map(({ target, size, order }) => {
          // A batching function's records wait for their batch (sent when full, or at the end).
          if (size > 1) {
            const chunk = chunks.get(target.function) ?? { target, events: [], done: [] };
            chunks.set(target.function, chunk);
            const done = new Promise<boolean>((resolve) => {
              chunk.events.push(event);
              chunk.done.push(resolve);
            });
            if (chunk.events.length >= size) {
              chunks.delete(target.function);
              sendChunk(chunk);
            }
            return done;
          }
          const deliver = () =>
            this.#deliver(emit, forFunction(event, target.function), stop, writer);
          // Unordered: no lane to wait in.
          if (order === 'none') return deliver();
          return inLane(`${target.function}\u0000${laneOf(order, message.key)}`, deliver);
        });
        const delivered =
          deliveries.length === 1
            ? (deliveries[0] as Promise<boolean>)
            : Promise.all(deliveries).then((done) => done.every(Boolean));
        void delivered.then((ok) => {
          this.#inHand -= 1;
          this.#roomWaiters.shift()?.();
          try {
            if (!ok) return;
            const passed = offsets.finish(message.offset);
            if (passed === undefined || isStale()) return;
            resolveOffset(passed);
            passedOffset = passed;
          } catch (error) {
            // kafkajs refused the offset: the batch fails once its records are over.
            failure ??= error instanceof Error ? error : new Error(String(error));
          } finally {
            if (--outstanding === 0) allDone?.();
          }
        });
      }
      for (const chunk of chunks.values()) sendChunk(chunk);
      if (outstanding > 0) await new Promise<void>((resolve) => (allDone = resolve));
      if (failure !== undefined) throw failure;
    } finally {
      clearInterval(beating);
      metrics?.consumed.inc(labels, taken);
      report();
    }
  }

  /**
   * Records in hand at most: twice the calls in flight; with batching functions, a batch for each
   * partition running at once (up to 50,000).
   */
  #roomFor(): number {
    return Math.max(
      2 * this.#options.maxInflight,
      Math.min(this.#largestBatch * partitionsAtOnce, 50_000),
    );
  }

  /** Resolves once a record in hand is done, or at the stop. */
  async #room(stop: AbortSignal): Promise<void> {
    if (stop.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        stop.removeEventListener('abort', done);
        resolve();
      };
      this.#roomWaiters.push(done);
      stop.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * One call with a batch of records; each record the function did not take (its result, or
   * the call's failure) is then delivered alone, with the retries and dead letters of any.
   */
  async #deliverChunk(
    emit: Emit,
    chunk: Chunk,
    stop: AbortSignal,
    writer: RecordWriter | undefined,
  ): Promise<boolean[]> {
    const { events, target } = chunk;
    const first = events[0]!;
    const last = events.at(-1)!;
    let taken: boolean[] | undefined;
    try {
      const [response] = (await emit({
        topic: first.topic,
        body: batchBody(events),
        headers: {
          'Content-Type': 'application/json',
          'X-Kafka-Batch': String(events.length),
          'X-Kafka-Partition': first.headers['X-Kafka-Partition']!,
          'X-Kafka-Offset': first.headers['X-Kafka-Offset']!,
        },
        id: `${first.id ?? ''}..${last.headers['X-Kafka-Offset']}`,
        functions: [target.function],
        deadLetterOnFailure: false,
      })) as InvokerResponse[];
      taken = response
        ? (batchResults(response.body, events.length) ?? events.map(() => true))
        : events.map(() => true);
    } catch (error) {
      if (stop.aborted) return events.map(() => false);
      this.#logger.warn(
        { err: error, function: target.function, records: events.length },
        'batch not taken: its records go one by one',
      );
    }
    const done: boolean[] = [];
    for (const [i, event] of events.entries()) {
      done.push(
        taken?.[i] === true ||
          (await this.#deliver(emit, forFunction(event, target.function), stop, writer)),
      );
    }
    return done;
  }

  /**
   * Delivers until the functions answered or their failure was kept: true; false when the
   * connector stops first (the record is then delivered again, by this group or another).
   */
  async #deliver(
    emit: Emit,
    event: SourceEvent,
    stop: AbortSignal,
    writer: RecordWriter | undefined,
  ): Promise<boolean> {
    const backoff = new Backoff(redeliveryBackoff);
    const { deadLetterTopic } = this.#options.settings;
    for (;;) {
      try {
        await emit(event);
        return true;
      } catch (error) {
        if (error instanceof DeliveryError) {
          // Kept in the dead-letter topic, or else in the store: passed.
          const written =
            writer && deadLetterTopic
              ? await writer.deadLetter(deadLetterTopic, event, error).then(
                  () => true,
                  (failure: unknown) => {
                    this.#logger.warn(
                      { err: failure, record: event.id },
                      'dead-letter topic not written',
                    );
                    return false;
                  },
                )
              : false;
          if (written || error.deadLettered) return true;
        }
        if (stop.aborted) return false;
        const waitMs = backoff.next();
        this.#logger.warn(
          { err: error, record: event.id, function: event.functions?.[0], retryInMs: waitMs },
          'record not delivered: tried again, its commit waits',
        );
        await sleep(waitMs, undefined, { signal: stop }).catch(() => {});
        if (stop.aborted) return false;
      }
    }
  }

  #clientConfig(): ClientConfig {
    const { settings } = this.#options;
    const logger = this.#logger;
    // kafkajs's errors while a broker is away are many: warnings, the rest debug.
    const logCreatorToLogger: logCreator =
      () =>
      ({ level, namespace, log }) => {
        const { message, timestamp: _timestamp, logger: _logger, ...fields } = log;
        const entry = { kafkajs: namespace, ...fields };
        if (level === logLevel.ERROR) logger.warn(entry, message);
        else logger.debug(entry, message);
      };
    return {
      clientId: 'fnbus-kafka-connector',
      brokers: settings.brokers,
      logLevel: logLevel.WARN,
      logCreator: logCreatorToLogger,
      ...(settings.tls ? { ssl: settings.tls } : {}),
      ...(settings.sasl ? { sasl: settings.sasl } : {}),
    } as ClientConfig;
  }
}

/**
 * Writes records back to Kafka: a function's answer to its reply topic (the record's key, the
 * answer's status and function in headers), a record failed for good to the dead-letter topic
 * (its body and key, where it came from and why in headers).
 */
class RecordWriter {
  readonly #producer: Producer;
  #connected: Promise<void> | undefined;

  constructor(producer: Producer) {
    this.#producer = producer;
  }

  async reply(topic: string, event: SourceEvent, key: Buffer | null, answer: SourceReply) {
    const headers: Record<string, string> = {
      'X-Function': answer.function,
      'X-Status': String(answer.status),
      'X-Source': event.id ?? event.topic,
    };
    const type = answer.headers['Content-Type'] ?? answer.headers['content-type'];
    if (type !== undefined) headers['Content-Type'] = String(type);
    await this.#send(topic, { key, value: Buffer.from(answer.body), headers });
  }

  async deadLetter(topic: string, event: SourceEvent, error: DeliveryError) {
    const key = event.headers['X-Kafka-Key'];
    const headers: Record<string, string> = {
      'X-Source': event.id ?? event.topic,
      'X-Topic': event.topic,
      'X-Function': error.failed.map((r) => r.function).join(','),
      'X-Error': error.message,
    };
    // The key's bytes again: base64, or a header's Latin-1 characters one byte each.
    await this.#send(topic, {
      key:
        key === undefined
          ? null
          : Buffer.from(key, event.headers['X-Kafka-Key-Enc'] === 'b64' ? 'base64' : 'latin1'),
      value: Buffer.from(event.body),
      headers,
    });
  }

  async #send(
    topic: string,
    message: { key: Buffer | null; value: Buffer; headers: Record<string, string> },
  ) {
    this.#connected ??= this.#producer.connect().catch((error: unknown) => {
      this.#connected = undefined;
      throw error;
    });
    await this.#connected;
    await this.#producer.send({ topic, messages: [message] });
  }
}

/** The event for one function alone (Object.assign: a spread then extended is slow in V8). */
function forFunction(event: SourceEvent, fn: string): SourceEvent {
  return Object.assign({}, event, { functions: [fn] });
}

/** A batching function's records of one partition, gathered for one call. */
interface Chunk {
  target: TopicTarget;
  events: SourceEvent[];
  /** Settles each record's delivery: whether it was taken or its failure kept. */
  done: ((ok: boolean) => void)[];
}

/** The lane a record takes within one function: one per partition, or one per key. */
function laneOf(order: 'partition' | 'key', key: Buffer | null): string {
  if (order === 'partition') return '';
  // Latin-1 maps each byte to one character: distinct keys, distinct lanes.
  return key === null ? '\u0000null' : `k${key.toString('latin1')}`;
}
