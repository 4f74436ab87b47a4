import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { Counter, type Registry } from 'prom-client';
import { ConfigError } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { OpenFaasHeader } from '../../core/openfaas-names.js';
import { Backoff } from '../../core/retry-policy.js';
import type { Source, SourceEvent, SourceReply } from '../../core/source.js';
import { DeliveryError, type InvokerResponse } from '../sdk/controller.js';
import { brokerHeaderName, contentTypeHeader, setBrokerHeader } from '../sdk/event-headers.js';
import type { TopicMap } from '../sdk/topic-map.js';
import { mqttTopics } from '../sdk/topic-matchers.js';
import { filterProblem, subscriptionIdentifier } from './mqtt-filters.js';
import { loggableBroker, type MqttSettings } from './mqtt-kind.js';

export interface MqttSourceOptions {
  settings: MqttSettings;
  /** The map in use; the subscriptions follow its patterns when no topics are configured. */
  topicMap: () => TopicMap | undefined;
  /** How often the subscriptions are compared with the map. */
  followEveryMs: number;
  logger?: Logger;
  registry?: Registry;
}

type Emit = (event: SourceEvent) => Promise<InvokerResponse[]>;
type Publish = Parameters<MqttClient['handleMessage']>[0];
type SendPacket = (
  packet: { cmd: string; messageId?: number },
  callback?: (error?: Error) => void,
  ...rest: unknown[]
) => void;

/** A QoS 1/2 message taken on the current connection, until its acknowledgement is written. */
interface Unacked {
  messageId: number;
  state: 'running' | 'done' | 'failed';
  /** Writes the PUBACK or PUBREC mqtt.js prepared for it. */
  ack?: () => void;
}

/** mqtt.js's wait between connection attempts; after a failed delivery, the backoff's. */
const reconnectEveryMs = 1000;

/** CONNACK reasons that no retry can change: the settings are wrong (MQTT 5 and 3.1.1 codes). */
const refusedForGood: Record<number, string> = {
  1: 'mqtt_version: the broker does not speak this MQTT version',
  2: 'client_id: the broker refused it',
  4: 'username, password: the broker refused them',
  5: 'username, password: not authorized by the broker',
  132: 'mqtt_version: the broker does not speak this MQTT version',
  133: 'client_id: the broker refused it',
  134: 'username, password: the broker refused them',
  135: 'username, password: not authorized by the broker',
  140: 'the broker wants an authentication method fnbus does not offer',
};

/**
 * MQTT as a Source, on mqtt.js: subscribes to the configured filters, or to the functions' topic
 * patterns (following the topic map as functions come and go), and emits each message.
 *
 * At least once: a QoS 1/2 message's PUBACK or PUBREC is written only once `emit` resolved, in the
 * order the messages came (MQTT's ordering rule), on the connection it came on. The session is
 * persistent (clean: false, and an expiry with MQTT 5), so the broker keeps what is published
 * while the connector is away and what was not acknowledged, and sends it on the next connection.
 * When a delivery fails (other than into the dead letters), the connection is dropped and made
 * again after a growing pause: the broker then sends every unacknowledged message again.
 *
 * mqtt.js reads one packet at a time and acknowledges when its handler calls back; the handlers
 * here call back at once and the acknowledgement it then writes is held until the delivery is
 * done, so up to `inflight` messages are delivered at once, one topic's in order unless `order`
 * is `none`. Acknowledgements go in the order the messages came (as MQTT asks), so a message
 * done waits for the ones before it; MQTT 5's Receive Maximum lets the broker send twice
 * `inflight` unacknowledged, so that one slow delivery does not starve the others. The
 * acknowledgements ready in one turn of the event loop go out in one write.
 */
export class MqttSource implements Source<InvokerResponse[]> {
  readonly #options: MqttSourceOptions;
  readonly #logger: Logger;
  #client: MqttClient | undefined;
  /** Counts connections: an acknowledgement is owed on the connection its message came on. */
  #connection = 0;
  /** A flush of the acknowledgements due is scheduled for the end of this turn. */
  #flushing = false;
  /** The message whose acknowledgement mqtt.js is writing now (#handOver). */
  #handing: Unacked | undefined;
  #emit: Emit | undefined;
  #stopping = false;
  /** QoS 1/2 messages of this connection not yet acknowledged, in arrival order. */
  #unacked: Unacked[] = [];
  /** Messages taken and not yet delivered (or failed). */
  #running = 0;
  readonly #roomWaiters: (() => void)[] = [];
  /** Topic → the last delivery queued for it (order: topic). */
  readonly #chains = new Map<string, Promise<void>>();
  readonly #inFlight = new Set<Promise<void>>();
  /** Filter → its subscription identifier, as subscribed on this session. */
  readonly #subscribed = new Map<string, number>();
  /** Subscription identifier → the filters it stands for. */
  readonly #filtersById = new Map<number, Set<string>>();
  /** Filters the broker refused (not authorized): not asked again while wanted. */
  readonly #refused = new Set<string>();
  #following = false;
  #followAgain = false;
  readonly #warnedFilters = new Set<string>();
  readonly #redelivery = new Backoff({ minWaitMs: 1000, maxWaitMs: 30_000 });
  #offlineSince: number | undefined;
  #errorSaid = false;
  readonly #metrics: { received: Counter<'qos'>; givenBack: Counter<'qos'> } | undefined;

  constructor(options: MqttSourceOptions) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    const registers = options.registry ? [options.registry] : undefined;
    this.#metrics = registers && {
      received: new Counter({
        name: 'fnbus_mqtt_messages_received_total',
        help: 'Messages taken from the MQTT broker, per QoS',
        labelNames: ['qos'],
        registers,
      }),
      givenBack: new Counter({
        name: 'fnbus_mqtt_messages_not_delivered_total',
        help: 'Messages not delivered nor dead-lettered: left unacknowledged for the broker (QoS 1/2) or lost (QoS 0)',
        labelNames: ['qos'],
        registers,
      }),
    };
  }

  /** Subscribes and delivers until `signal` aborts; then finishes what is in flight and leaves. */
  async start(emit: Emit, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    this.#emit = emit;
    const { settings, followEveryMs } = this.#options;
    // Hooked before any packet can arrive: the connection is made on a later tick.
    const client = mqtt.connect(settings.brokerUrl, this.#clientOptions());
    this.#client = client;
    this.#hold(client);
    let refuse!: (error: Error) => void;
    const refused = new Promise<never>((_, reject) => (refuse = reject));
    refused.catch(() => {});
    client.on('connect', (connack) => this.#connected(connack.sessionPresent));
    client.on('close', () => this.#disconnected());
    client.on('error', (error) => {
      const code = (error as Error & { code?: unknown }).code;
      const why = typeof code === 'number' ? refusedForGood[code] : undefined;
      if (why && /^Connection refused/.test(error.message)) {
        refuse(new ConfigError([`${why} (${error.message})`]));
        return;
      }
      // Once per outage: mqtt.js tries again every second.
      if (!this.#errorSaid) this.#logger.warn({ err: error }, 'mqtt client error');
      this.#errorSaid = true;
    });
    const follow =
      settings.topics.length === 0 ? setInterval(() => this.#follow(), followEveryMs) : undefined;
    try {
      await Promise.race([once(signal, 'abort'), refused]);
    } finally {
      clearInterval(follow);
      await this.#stop(client);
    }
  }

  #clientOptions(): IClientOptions {
    const { settings } = this.#options;
    return {
      clientId: settings.clientId,
      clean: settings.clean,
      protocolVersion: settings.protocolVersion,
      ...(settings.username !== undefined ? { username: settings.username } : {}),
      ...(settings.password !== undefined ? { password: settings.password } : {}),
      ...settings.tls,
      ...(settings.protocolVersion === 5
        ? {
            properties: {
              sessionExpiryInterval: settings.clean ? 0 : settings.sessionExpirySeconds,
              receiveMaximum: Math.min(65_535, 2 * settings.inflight),
            },
          }
        : {}),
      reconnectPeriod: reconnectEveryMs,
      connectTimeout: 10_000,
      // A refused CONNACK is judged here: for good (credentials) or not (server busy).
      reconnectOnConnackError: true,
      // Subscriptions are this source's: made again when the broker has not kept the session.
      resubscribe: false,
    };
  }

  /**
   * Makes mqtt.js take messages through this source: each is taken when it arrives (QoS 2 at its
   * PUBLISH, not its PUBREL), and the PUBACK or PUBREC mqtt.js then writes is held until the
   * delivery is done. mqtt.js has no public way to acknowledge later without stopping its reading
   * (which would also stop its keepalive answers), so its packet writer is wrapped.
   */
  #hold(client: MqttClient): void {
    client.options.customHandleAcks = (_topic, _payload, packet: Publish, done) => {
      if (packet.qos !== 2) return done(0);
      const connection = this.#connection;
      void this.#take(packet, connection).then((unacked) => this.#handOver(unacked, () => done(0)));
    };
    client.handleMessage = (packet, done) => {
      // QoS 2 arrives here at its PUBREL, long after it was taken.
      if (packet.qos === 2) return done();
      const connection = this.#connection;
      void this.#take(packet, connection).then((unacked) => this.#handOver(unacked, () => done()));
    };
    const writer = client as unknown as { _sendPacket: SendPacket };
    const send = writer._sendPacket.bind(client);
    writer._sendPacket = (packet, callback, ...rest) => {
      if (packet.cmd !== 'puback' && packet.cmd !== 'pubrec') {
        send(packet, callback, ...rest);
        return;
      }
      const handing = this.#handing;
      this.#handing = undefined;
      // The next packet is read now; the acknowledgement waits for its delivery.
      callback?.();
      // Not taken (stopping, or its connection gone): never written, the broker sends it again.
      if (!handing || handing.messageId !== packet.messageId) return;
      handing.ack = () => send(packet, undefined);
      this.#flush();
    };
  }

  /**
   * Calls mqtt.js back for a message; the PUBACK or PUBREC it writes from within that call (at
   * once: its default store is synchronous) is `unacked`'s.
   */
  #handOver(unacked: Unacked | undefined, done: () => void): void {
    this.#handing = unacked;
    try {
      done();
    } finally {
      this.#handing = undefined;
    }
  }

  /**
   * Starts delivering `packet`, which came on `connection`, once there is room: its entry among
   * the unacknowledged (QoS 1/2), or undefined when it is not taken (stopping, or its connection
   * closed meanwhile: an acknowledgement on another connection would name another message).
   */
  async #take(packet: Publish, connection: number): Promise<Unacked | undefined> {
    const { inflight, order } = this.#options.settings;
    while (!this.#stopping && this.#running >= inflight) {
      await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
    }
    const emit = this.#emit;
    if (this.#stopping || !emit || connection !== this.#connection) return undefined;
    const unacked: Unacked | undefined =
      packet.qos > 0 && packet.messageId !== undefined
        ? { messageId: packet.messageId, state: 'running' }
        : undefined;
    if (unacked) this.#unacked.push(unacked);
    this.#running += 1;
    const topic = packet.topic.toString();
    const before = order === 'topic' ? this.#chains.get(topic) : undefined;
    const delivery = (before ?? Promise.resolve()).then(() =>
      this.#deliver(emit, packet, topic, unacked),
    );
    if (order === 'topic') {
      this.#chains.set(topic, delivery);
      void delivery.then(() => {
        if (this.#chains.get(topic) === delivery) this.#chains.delete(topic);
      });
    }
    this.#inFlight.add(delivery);
    void delivery.then(() => this.#inFlight.delete(delivery));
    return unacked;
  }

  /** Delivers one message; never rejects. */
  async #deliver(
    emit: Emit,
    packet: Publish,
    topic: string,
    unacked: Unacked | undefined,
  ): Promise<void> {
    let delivered = false;
    const labels = { qos: String(packet.qos) };
    this.#metrics?.received.inc(labels);
    try {
      // Its turn came after the stop (behind its topic's last): left to the broker, which keeps
      // it for the next run.
      if (this.#stopping) throw new Error('the connector is stopping');
      await emit(this.#eventOf(packet, topic));
      delivered = true;
    } catch (error) {
      // Kept where `fnbus dlq` finds it: redelivering would only fail and bury it again.
      delivered = error instanceof DeliveryError && error.deadLettered;
      const where = { topic, qos: packet.qos, err: error };
      if (delivered) this.#logger.warn(where, 'mqtt message dead-lettered: acknowledged');
      else if (packet.qos === 0) this.#logger.warn(where, 'mqtt message (QoS 0) not delivered');
      else this.#logger.warn(where, 'mqtt message not delivered: the broker will send it again');
    }
    this.#running -= 1;
    this.#roomWaiters.shift()?.();
    if (!delivered) this.#metrics?.givenBack.inc(labels);
    if (!unacked) return;
    unacked.state = delivered ? 'done' : 'failed';
    if (delivered) {
      this.#redelivery.reset();
      this.#flush();
    } else {
      this.#redeliver(unacked);
    }
  }

  #eventOf(packet: Publish, topic: string): SourceEvent {
    const properties = packet.properties;
    const headers: Record<string, string> = {
      [OpenFaasHeader.Topic]: topic,
      'X-Mqtt-Qos': String(packet.qos),
      'X-Mqtt-Retain': String(packet.retain),
      'X-Mqtt-Dup': String(packet.dup),
    };
    const type = properties?.contentType && contentTypeHeader(properties.contentType);
    if (type) headers['Content-Type'] = type;
    // MQTT 5 user properties, each as `X-Mqtt-<name>` (a property sent several times: the last).
    for (const name in properties?.userProperties) {
      const value = [properties.userProperties[name] ?? []].flat().at(-1);
      const header = brokerHeaderName('X-Mqtt-', name);
      if (value !== undefined && header !== undefined) setBrokerHeader(headers, header, value);
    }
    const functions = this.#functionsOf(topic, properties?.subscriptionIdentifier);
    const responseTopic = properties?.responseTopic;
    const correlationData = properties?.correlationData;
    return {
      topic,
      body: packet.payload instanceof Uint8Array ? packet.payload : Buffer.from(packet.payload),
      headers,
      ...(packet.messageId !== undefined ? { id: String(packet.messageId) } : {}),
      ...(functions ? { functions } : {}),
      ...(responseTopic
        ? {
            reply: (answer: SourceReply, signal: AbortSignal) =>
              this.#reply(responseTopic, correlationData, packet.qos, answer, signal),
          }
        : {}),
    };
  }

  /**
   * The functions this copy of a message is for, when its subscription identifiers say which of
   * the functions' filters it came through (MQTT 5): a broker sends one copy per matching
   * subscription (mosquitto does), and without this a function would get `sensors/#`'s copy and
   * `sensors/+/temp`'s. Each function takes the copy of the first (sorted) of its filters that
   * match. Undefined (every function of the topic) when the identifiers name no known filter.
   */
  #functionsOf(topic: string, ids: number | number[] | undefined): string[] | undefined {
    if (ids === undefined || this.#options.settings.topics.length > 0) return undefined;
    const map = this.#options.topicMap();
    if (!map) return undefined;
    const through = new Set<string>();
    for (const id of [ids].flat()) {
      const filters = this.#filtersById.get(id);
      if (!filters || filters.size === 0) return undefined;
      for (const filter of filters) through.add(filter);
    }
    const firstFilter = new Map<string, string>();
    for (const [pattern, targets] of map.entries()) {
      // Only filters with a subscription bring copies (not one refused, or not yet made).
      if (!this.#subscribed.has(pattern) || !mqttTopics(pattern, topic)) continue;
      for (const target of targets) {
        if (!firstFilter.has(target.function)) firstFilter.set(target.function, pattern);
      }
    }
    return [...firstFilter].filter(([, pattern]) => through.has(pattern)).map(([fn]) => fn);
  }

  /** A function's answer, to the message's MQTT 5 response topic, at the message's QoS. */
  async #reply(
    responseTopic: string,
    correlationData: Buffer | undefined,
    qos: 0 | 1 | 2,
    answer: SourceReply,
    signal: AbortSignal,
  ): Promise<void> {
    const client = this.#client;
    if (!client) return;
    const type = Object.entries(answer.headers).find(([name]) => /^content-type$/i.test(name))?.[1];
    const published = client.publishAsync(responseTopic, Buffer.from(answer.body), {
      qos,
      properties: {
        ...(correlationData ? { correlationData } : {}),
        ...(type ? { contentType: [type].flat()[0] } : {}),
        userProperties: { function: answer.function, status: String(answer.status) },
      },
    });
    const abort = new AbortController();
    const aborted = new Promise<never>((_, reject) => {
      const give = () =>
        reject(new Error(`no answer from the broker to the reply on ${responseTopic}`));
      signal.addEventListener('abort', give, { once: true, signal: abort.signal });
    });
    aborted.catch(() => {});
    try {
      await Promise.race([published, aborted]);
    } finally {
      abort.abort();
    }
  }

  /** Writes the acknowledgements that are due: those done, up to the first that is not. */
  /** Writes the acknowledgements that are due at the end of this turn, together. */
  #flush(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    setImmediate(() => this.#flushNow());
  }

  /** Writes the acknowledgements that are due, in order, in one write. */
  #flushNow(): void {
    this.#flushing = false;
    const client = this.#client;
    const stream = client?.stream as { cork(): void; uncork(): void } | undefined;
    stream?.cork();
    try {
      for (
        let head = this.#unacked[0];
        head?.state === 'done' && head.ack;
        head = this.#unacked[0]
      ) {
        this.#unacked.shift();
        if (client?.connected) head.ack();
      }
    } finally {
      stream?.uncork();
    }
  }

  /**
   * A QoS 1/2 message not delivered: MQTT redelivers only on a new connection, so this one is
   * dropped (unless it was already) and made again after a pause that grows with each failure.
   */
  #redeliver(unacked: Unacked): void {
    const client = this.#client;
    if (!client || this.#stopping || !this.#unacked.includes(unacked)) return;
    const waitMs = this.#redelivery.next();
    this.#logger.warn({ waitMs }, 'mqtt: reconnecting for the broker to send it again');
    client.options.reconnectPeriod = waitMs;
    (client.stream as { destroy(): void }).destroy();
  }

  #connected(sessionPresent: boolean): void {
    const client = this.#client;
    if (!client) return;
    client.options.reconnectPeriod = reconnectEveryMs;
    const { settings } = this.#options;
    this.#logger.info(
      {
        broker: loggableBroker(settings.brokerUrl),
        clientId: settings.clientId,
        sessionPresent,
        ...(this.#offlineSince ? { offlineMs: Date.now() - this.#offlineSince } : {}),
      },
      'mqtt connected',
    );
    this.#offlineSince = undefined;
    this.#errorSaid = false;
    // Without its session the broker holds none of the subscriptions: all are made again.
    if (!sessionPresent) this.#subscribed.clear();
    this.#follow();
  }

  #disconnected(): void {
    // Acknowledgements belong to the connection their messages came on: those still owed are
    // never written, and the broker sends their messages again.
    this.#connection += 1;
    this.#unacked = [];
    if (this.#offlineSince === undefined && !this.#stopping) {
      this.#offlineSince = Date.now();
      this.#logger.warn(
        { broker: loggableBroker(this.#options.settings.brokerUrl) },
        'mqtt disconnected: reconnecting',
      );
    }
  }

  /** The filters wanted now: the configured ones, else the functions' valid topic patterns. */
  #wanted(): Set<string> {
    const { settings, topicMap } = this.#options;
    if (settings.topics.length > 0) return new Set(settings.topics);
    const wanted = new Set<string>();
    for (const pattern of topicMap()?.topics() ?? []) {
      const problem = filterProblem(pattern);
      if (!problem) wanted.add(pattern);
      else if (!this.#warnedFilters.has(pattern)) {
        this.#warnedFilters.add(pattern);
        this.#logger.warn({ topic: pattern }, `mqtt: not subscribed, the topic ${problem}`);
      }
    }
    return wanted;
  }

  /** Subscribes to what is wanted and not subscribed, unsubscribes what is no more; one at a time. */
  #follow(): void {
    if (this.#following) {
      this.#followAgain = true;
      return;
    }
    this.#following = true;
    void this.#reconcile()
      .catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'mqtt: subscriptions not updated, tried again later');
      })
      .finally(() => {
        this.#following = false;
        if (this.#followAgain) {
          this.#followAgain = false;
          this.#follow();
        }
      });
  }

  async #reconcile(): Promise<void> {
    const client = this.#client;
    if (!client?.connected || this.#stopping) return;
    const { qos, protocolVersion } = this.#options.settings;
    const wanted = this.#wanted();
    for (const filter of this.#refused) if (!wanted.has(filter)) this.#refused.delete(filter);
    const adding = [...wanted].filter(
      (filter) => !this.#subscribed.has(filter) && !this.#refused.has(filter),
    );
    const removing = [...this.#subscribed.keys()].filter((filter) => !wanted.has(filter));
    await Promise.all([
      ...adding.map(async (filter) => {
        const id = subscriptionIdentifier(filter);
        const grants = await client.subscribeAsync(
          filter,
          protocolVersion === 5
            ? // Retained messages only for a subscription the session did not have already.
              { qos, rh: 1, properties: { subscriptionIdentifier: id } }
            : { qos },
        );
        const refused = grants.find((grant) => grant.qos >= 128);
        if (refused) {
          // Not asked again while it is wanted: a refusal (not authorized) does not pass by itself.
          this.#refused.add(filter);
          this.#logger.error({ topic: filter, code: refused.qos }, 'mqtt: subscription refused');
          return;
        }
        this.#subscribed.set(filter, id);
        const filters = this.#filtersById.get(id) ?? new Set<string>();
        this.#filtersById.set(id, filters.add(filter));
        this.#logger.info({ topic: filter, qos: grants[0]?.qos }, 'mqtt subscribed');
      }),
      ...removing.map(async (filter) => {
        await client.unsubscribeAsync(filter);
        const id = this.#subscribed.get(filter);
        this.#subscribed.delete(filter);
        if (id !== undefined) this.#filtersById.get(id)?.delete(filter);
        this.#logger.info({ topic: filter }, 'mqtt unsubscribed: no function takes it');
      }),
    ]);
  }

  /**
   * Takes no more messages, lets those in flight end (the runtime bounds that: it cuts their
   * calls), writes the acknowledgements they earned, and leaves the broker.
   */
  async #stop(client: MqttClient): Promise<void> {
    this.#stopping = true;
    for (const wake of this.#roomWaiters.splice(0)) wake();
    await Promise.allSettled([...this.#inFlight]);
    this.#flushNow();
    // A graceful DISCONNECT, unless the broker does not answer (or is not there).
    const ended = client.endAsync().catch(() => {});
    const waited = new AbortController();
    await Promise.race([ended, sleep(2000, undefined, { signal: waited.signal }).catch(() => {})]);
    waited.abort();
    if (!client.disconnected) await client.endAsync(true).catch(() => {});
  }
}
