import { EnvReader, fnbusName } from '../../core/config.js';
import { readConnectorSettings, readTlsFiles, type TlsFiles } from '../sdk/config.js';
import type { ConnectorKind, KindConfig } from '../sdk/run-connector.js';
import { mqttTopics } from '../sdk/topic-matchers.js';
import { filterProblem } from './mqtt-filters.js';
import type { MqttSource } from './mqtt-source.js';

export interface MqttSettings {
  /** The broker (broker): mqtt://, mqtts://, tcp://, ssl://, tls://, ws://, wss://. */
  brokerUrl: string;
  /** Subscription filters named in the settings (topics, topic); empty: the topic map's. */
  topics: string[];
  /** The QoS asked for on every subscription (qos). */
  qos: 0 | 1 | 2;
  /** The session's name at the broker (client_id): stable, so that the session is found again. */
  clientId: string;
  /** Start with no session (clean): what was published meanwhile is not delivered. */
  clean: boolean;
  username?: string;
  password?: string;
  /** 5, or 4 for MQTT 3.1.1 (mqtt_version). */
  protocolVersion: 4 | 5;
  /** How long the broker keeps the session once the connector is gone (MQTT 5). */
  sessionExpirySeconds: number;
  /** Messages being delivered at once; MQTT 5's Receive Maximum (mqtt_inflight). */
  inflight: number;
  /** `topic`: one topic's messages one after another, in order; `none`: all at once. */
  order: 'topic' | 'none';
  /** TLS files (ca_file, cert_file, key_file), their contents. */
  tls?: TlsFiles;
}

export interface MqttConfig extends KindConfig {
  mqtt: MqttSettings;
}

/** The default session name: one stable name, so a restart finds its session (README: mqtt/). */
export const defaultClientId = 'fnbus-mqtt-connector';

const schemes = ['mqtt', 'mqtts', 'tcp', 'ssl', 'tls', 'ws', 'wss'];
const tlsSchemes = ['mqtts', 'ssl', 'tls', 'wss'];

/** The broker URL as it may be logged: no password. */
export function loggableBroker(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.href;
  } catch {
    return '(not a URL)';
  }
}

function readMqttSettings(read: EnvReader): MqttSettings {
  const broker = read.raw('broker');
  const brokerUrl = broker?.value.trim() ?? 'tcp://127.0.0.1:1883';
  const scheme = URL.canParse(brokerUrl) ? new URL(brokerUrl).protocol.replace(/:$/, '') : '';
  if (broker && (!schemes.includes(scheme) || !new URL(brokerUrl).hostname)) {
    read.problem(
      `broker: "${loggableBroker(brokerUrl)}" is not a broker URL (${schemes.map((s) => `${s}://`).join(', ')}host:port)`,
    );
  }
  const given = read.raw('topics', 'topic');
  const topics = (given?.value ?? '')
    .split(',')
    .map((topic) => topic.trim())
    .filter((topic) => topic !== '');
  for (const topic of topics) {
    const problem = filterProblem(topic);
    if (problem) read.problem(`${given?.name}: "${topic}" ${problem}`);
  }
  const version = read.raw(...fnbusName('mqtt_version'));
  let protocolVersion: 4 | 5 = 5;
  if (version) {
    const value = version.value.trim();
    if (value === '3.1.1' || value === '4') protocolVersion = 4;
    else if (value !== '5' && value !== '5.0') {
      read.problem(`${version.name}: "${version.value}" is not 5 or 3.1.1`);
    }
  }
  const username = read.string('username') ?? read.fileText('username_file')?.trim();
  const password = read.string('password') ?? read.fileText('password_file')?.trim();
  if (password !== undefined && username === undefined && protocolVersion === 4) {
    read.problem('password: MQTT 3.1.1 takes a password only with a username (set username)');
  }
  const tls = readTlsFiles(read);
  const { cert, key } = tls ?? {};
  if (tls && scheme && !tlsSchemes.includes(scheme)) {
    read.problem(
      `ca_file, cert_file, key_file: TLS files for a ${scheme}:// broker (use mqtts://, ssl:// or wss://)`,
    );
  }
  if (Boolean(cert) !== Boolean(key)) {
    read.problem('cert_file, key_file: a client certificate needs both');
  }
  const clientId = read.string('client_id', defaultClientId).trim();
  if (Buffer.byteLength(clientId) > 65_535 || clientId.includes('\u0000')) {
    read.problem('client_id: longer than 65535 bytes, or holds a NUL character');
  }
  return {
    brokerUrl,
    topics,
    qos: read.integer('qos', 1, { min: 0, max: 2 }) as 0 | 1 | 2,
    clientId,
    clean: read.boolean('clean', false),
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    protocolVersion,
    sessionExpirySeconds: Math.min(
      Math.round(read.durationMs(fnbusName('mqtt_session_expiry'), 86_400_000) / 1000),
      0xffff_ffff,
    ),
    inflight: read.integer(fnbusName('mqtt_inflight'), 64, { min: 1, max: 65_535 }),
    order: read.oneOf(fnbusName('mqtt_order'), ['topic', 'none'] as const, 'topic'),
    ...(tls ? { tls } : {}),
  };
}

/**
 * `mqtt`: each message of a subscribed filter goes to the functions whose `topic` annotation
 * takes its topic (MQTT wildcards and `$share/<group>/` included: mqtt-source.ts); a QoS 1/2
 * message is acknowledged once they all answered. Settings by the names of OpenFaaS's
 * mqtt-connector where it has them (`broker`, `topic`, `qos`, `clean`); synchronous by default
 * and `application/json` for messages that say no content type, as its.
 */
export const mqttKind = {
  name: 'mqtt',
  connector: 'mqtt-connector',
  ownThread: true,
  matcher: mqttTopics,
  readConfig(env) {
    const read = new EnvReader(env);
    const connector = readConnectorSettings(read, { contentType: 'application/json' });
    return read.done({ connector, mqtt: readMqttSettings(read) });
  },
  async createSource({ config, topicMap, logger, registry }): Promise<MqttSource> {
    const { MqttSource } = await import('./mqtt-source.js');
    return new MqttSource({
      settings: config.mqtt,
      topicMap,
      logger,
      followEveryMs: Math.min(config.connector.rebuildIntervalMs, 1000),
      ...(registry ? { registry } : {}),
    });
  },
} satisfies ConnectorKind<MqttConfig, MqttSource>;
