import { setTimeout as sleep } from 'node:timers/promises';
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import {
  connect,
  headers as natsHeaders,
  nanos,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import { Counter, type Registry } from 'prom-client';
import { addBrokerHeader } from '../sdk/event-headers.js';
import type { Logger } from '../../core/logger.js';
import { Backoff, backoffMs } from '../../core/retry-policy.js';
import type { SourceEvent } from '../../core/source.js';
import { DeliveryError } from '../sdk/controller.js';
import type { ConnectorSource } from '../sdk/run-connector.js';
import type { TopicMap } from '../sdk/topic-map.js';
import { isNatsSubject, type NatsSettings } from './nats-kind.js';

export interface NatsSourceOptions {
  settings: NatsSettings;
  topicMap: () => TopicMap | undefined;
  logger: Logger;
  /** Messages in hand at once (JetStream: pulled and unacknowledged). */
  maxInflight: number;
  registry?: Registry;
}

type Emit = (event: SourceEvent) => Promise<unknown>;

/** How often core subscriptions are checked against the topic map. */
const followEveryMs = 1000;
/** A JetStream message not delivered (and not kept as a dead letter) comes back after this. */
const redeliveryBackoff = { minWaitMs: 500, maxWaitMs: 30_000 };

/**
 * NATS as a connector's source. Core NATS (no `stream`): a subscription in `queue_group` to each
 * subject of `topics`, else to each subject or pattern some function's annotation names,
 * following the topic map; at most once, as core NATS is; a request's reply subject gets each
 * function's answer to a synchronous call. JetStream (`stream`): a durable consumer of the
 * stream; a message is acknowledged once every function it reaches answered (or its failure is
 * kept as a dead letter), given back with a delay otherwise, and kept ours while its functions
 * run (progress acks): at least once, replicas sharing the consumer.
 */
export class NatsSource implements ConnectorSource {
  readonly #options: NatsSourceOptions;
  readonly #logger: Logger;
  /** Per subscription (a core subject or pattern, or the stream): a bounded set of series. */
  readonly #metrics:
    { received: Counter<'subscription'>; dropped: Counter<'subscription'> } | undefined;
  #droppedSaidAt = 0;
  /** JetStream messages answered in this turn, and the promise of their acks' write. */
  #acksDue: JsMsg[] = [];
  #acksSent: Promise<void> | undefined;

  constructor(options: NatsSourceOptions) {
    this.#options = options;
    this.#logger = options.logger;
    const registers = options.registry ? [options.registry] : undefined;
    this.#metrics = registers && {
      received: new Counter({
        name: 'fnbus_nats_messages_received_total',
        help: 'Messages taken from NATS, per subscription (core subject or pattern, or stream)',
        labelNames: ['subscription'],
        registers,
      }),
      dropped: new Counter({
        name: 'fnbus_nats_messages_dropped_total',
        help: 'Core NATS messages dropped while 2 x max_inflight were already in hand',
        labelNames: ['subscription'],
        registers,
      }),
    };
  }

  async start(emit: Emit, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const { settings } = this.#options;
    const nc = await connect({
      servers: settings.servers,
      name: 'fnbus-nats-connector',
      // A server not up yet, or restarted, is waited for.
      waitOnFirstConnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      noAsyncTraces: true,
      ...(settings.user !== undefined ? { user: settings.user, pass: settings.pass } : {}),
      ...(settings.token !== undefined ? { token: settings.token } : {}),
      ...(settings.tls ? { tls: settings.tls } : {}),
    });
    this.#logger.info({ servers: settings.servers.length }, 'nats connector connected');
    try {
      if (settings.stream) await this.#jetstream(nc, settings.stream, emit, signal);
      else await this.#core(nc, emit, signal);
    } finally {
      await nc.drain().catch(() => nc.close());
    }
  }

  /** Core subjects: subscriptions kept in step with the topic map until stopped. */
  async #core(nc: NatsConnection, emit: Emit, signal: AbortSignal): Promise<void> {
    const { settings, topicMap } = this.#options;
    const subscriptions = new Map<string, Subscription>();
    const inFlight = new Set<Promise<void>>();
    while (!signal.aborted) {
      const wanted = new Set(
        settings.subjects.length > 0
          ? settings.subjects
          : (topicMap()?.topics() ?? []).filter(isNatsSubject),
      );
      for (const [subject, subscription] of subscriptions) {
        if (wanted.has(subject)) continue;
        subscription.unsubscribe();
        subscriptions.delete(subject);
      }
      const added: string[] = [];
      for (const subject of wanted) {
        if (subscriptions.has(subject)) continue;
        subscriptions.set(
          subject,
          nc.subscribe(subject, {
            queue: settings.queueGroup,
            callback: (error, msg) => {
              if (error) return;
              // Core NATS keeps nothing for a slow consumer: past what the calls can take soon,
              // a message is dropped (counted), not held in memory without bound.
              if (inFlight.size >= 2 * this.#options.maxInflight) {
                this.#dropped(subject);
                return;
              }
              const run = this.#coreMessage(msg, emit, subject).finally(() => inFlight.delete(run));
              inFlight.add(run);
            },
          }),
        );
        added.push(subject);
      }
      if (added.length > 0) this.#logger.info({ subjects: added }, 'nats connector subscribed');
      await sleep(followEveryMs, undefined, { signal }).catch(() => {});
    }
    for (const subscription of subscriptions.values()) subscription.unsubscribe();
    await Promise.allSettled(inFlight);
  }

  #dropped(subscription: string): void {
    this.#metrics?.dropped.inc({ subscription });
    if (Date.now() - this.#droppedSaidAt < 10_000) return;
    this.#droppedSaidAt = Date.now();
    this.#logger.warn({ subscription }, 'core NATS messages dropped: the functions are behind');
  }

  async #coreMessage(msg: Msg, emit: Emit, subscription: string): Promise<void> {
    this.#metrics?.received.inc({ subscription });
    const event = eventOf(msg.subject, msg.data, msg.headers);
    if (msg.reply) {
      event.reply = (answer) => {
        const headers = natsHeaders();
        headers.set('X-Function', answer.function);
        headers.set('X-Status', String(answer.status));
        const type = answer.headers['Content-Type'] ?? answer.headers['content-type'];
        if (type !== undefined) headers.set('Content-Type', String(type));
        msg.respond(answer.body, { headers });
        return Promise.resolve();
      };
    }
    try {
      await emit(event);
    } catch (error) {
      // Core NATS keeps nothing: the message is gone (the controller dead-lettered what it could).
      this.#logger.warn({ err: error, subject: msg.subject }, 'message not delivered');
    }
  }

  /** The stream's durable consumer, pulled while not stopped; reconnects are the client's. */
  async #jetstream(nc: NatsConnection, stream: string, emit: Emit, signal: AbortSignal) {
    const { settings, maxInflight } = this.#options;
    const js = jetstream(nc);
    const backoff = new Backoff({ minWaitMs: 250, maxWaitMs: 10_000 });
    const held = new Set<JsMsg>();
    const beat = setInterval(
      () => {
        for (const msg of held) msg.working();
      },
      Math.max(100, settings.ackWaitMs / 3),
    );
    const inFlight = new Set<Promise<void>>();
    let wake: (() => void) | undefined;
    const woken = () => {
      const waiter = wake;
      wake = undefined;
      waiter?.();
    };
    signal.addEventListener('abort', woken);
    try {
      while (!signal.aborted) {
        try {
          await this.#ensureConsumer(nc, stream);
          const consumer = await js.consumers.get(stream, settings.consumer);
          const messages = await consumer.consume({ max_messages: 2 * maxInflight });
          const stopMessages = () => void messages.stop();
          signal.addEventListener('abort', stopMessages);
          if (signal.aborted) stopMessages();
          this.#logger.info({ stream, consumer: settings.consumer }, 'nats connector consuming');
          backoff.reset();
          try {
            for await (const msg of messages) {
              while (inFlight.size >= maxInflight && !signal.aborted) {
                await new Promise<void>((resolve) => (wake = resolve));
              }
              if (signal.aborted) {
                msg.nak();
                continue;
              }
              held.add(msg);
              const run = this.#jetstreamMessage(msg, emit, signal).finally(() => {
                held.delete(msg);
                inFlight.delete(run);
                woken();
              });
              inFlight.add(run);
            }
          } finally {
            signal.removeEventListener('abort', stopMessages);
          }
        } catch (error) {
          if (signal.aborted) break;
          const waitMs = backoff.next();
          this.#logger.warn({ err: error, stream, retryInMs: waitMs }, 'stream not consumed');
          await sleep(waitMs, undefined, { signal }).catch(() => {});
        }
      }
      await Promise.allSettled(inFlight);
    } finally {
      clearInterval(beat);
      signal.removeEventListener('abort', woken);
    }
  }

  /**
   * The durable consumer, made when missing: explicit acks, at most twice max_inflight unacked
   * (a message done waits a moment for its ack, and the next ones are in hand meanwhile).
   */
  async #ensureConsumer(nc: NatsConnection, stream: string): Promise<void> {
    const { settings, maxInflight } = this.#options;
    const jsm = await jetstreamManager(nc);
    const config = { ack_wait: nanos(settings.ackWaitMs), max_ack_pending: 2 * maxInflight };
    try {
      await jsm.consumers.info(stream, settings.consumer);
      await jsm.consumers.update(stream, settings.consumer, config);
    } catch {
      await jsm.consumers.add(stream, {
        durable_name: settings.consumer,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: settings.initialOffset === 'newest' ? DeliverPolicy.New : DeliverPolicy.All,
        ...config,
      });
    }
  }

  /**
   * Acks `msg` with the others due in this turn of the event loop: nats.js then writes them in
   * one go, not one write a message. Resolves once written to the client.
   */
  #ack(msg: JsMsg): Promise<void> {
    this.#acksDue.push(msg);
    this.#acksSent ??= new Promise((resolve) =>
      setImmediate(() => {
        const due = this.#acksDue;
        this.#acksDue = [];
        this.#acksSent = undefined;
        for (const one of due) one.ack();
        resolve();
      }),
    );
    return this.#acksSent;
  }

  /** Acknowledged once delivered or kept; given back with a growing delay otherwise. */
  async #jetstreamMessage(msg: JsMsg, emit: Emit, signal: AbortSignal): Promise<void> {
    this.#metrics?.received.inc({ subscription: msg.info.stream });
    const event = eventOf(msg.subject, msg.data, msg.headers);
    event.id = `${msg.info.stream}/${msg.seq}`;
    try {
      await emit(event);
      await this.#ack(msg);
    } catch (error) {
      if (error instanceof DeliveryError && error.deadLettered) {
        await this.#ack(msg);
        return;
      }
      if (signal.aborted) {
        msg.nak();
        return;
      }
      const waitMs = backoffMs(redeliveryBackoff, msg.info.deliveryCount);
      this.#logger.warn(
        { err: error, message: event.id, retryInMs: waitMs },
        'message not delivered: given back',
      );
      msg.nak(waitMs);
    }
  }
}

/**
 * A NATS message as an event: its headers as `X-Nats-<name>` (setBrokerHeader: UTF-8 text as its
 * bytes, else base64 with `X-Nats-<name>-Enc: b64`), `Content-Type` as is.
 */
function eventOf(subject: string, data: Uint8Array, headers: MsgHdrs | undefined): SourceEvent {
  const out: Record<string, string> = {};
  if (headers) {
    for (const [name, values] of headers) {
      const value = values.at(-1);
      if (value !== undefined) addBrokerHeader(out, 'X-Nats-', name, value);
    }
  }
  return { topic: subject, body: data, headers: out };
}
