import { EnvReader } from '../../core/config.js';
import { readConnectorSettings, readTlsFiles, type TlsFiles } from '../sdk/config.js';
import type { ConnectorKind, KindConfig } from '../sdk/run-connector.js';
import type { KafkaSource } from './kafka-source.js';

export interface KafkaSettings {
  /** `host:port` of each bootstrap broker (broker_hosts). */
  brokers: string[];
  /** The consumer group (group): replicas in one group split the partitions. */
  group: string;
  /** Topics named in the settings (topics); empty: the functions' `topic` annotations. */
  topics: string[];
  /** Where a group with no committed offset starts (initial_offset). */
  initialOffset: 'oldest' | 'newest';
  /** Most bytes fetched at once (max_bytes). */
  maxBytes: number;
  /** Where each function's answer to a synchronous call is written (reply_topic). */
  replyTopic?: string;
  /** Where a record whose delivery failed for good is written (dead_letter_topic). */
  deadLetterTopic?: string;
  /** TLS to the brokers (tls, ca_file, cert_file, key_file), as `tls.connect` options. */
  tls?: TlsFiles;
  /** SASL (sasl_mechanism, username_file, password_file). */
  sasl?: {
    mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
    username: string;
    password: string;
  };
}

export interface KafkaConfig extends KindConfig {
  kafka: KafkaSettings;
}

/** Kafka's own rule for a topic's name. */
export const kafkaTopicName = /^[a-zA-Z0-9._-]{1,249}$/;

function readKafkaSettings(read: EnvReader): KafkaSettings {
  const brokers = read.list('broker_hosts');
  for (const broker of brokers) {
    if (!/^[^\s:/]+:\d{1,5}$/.test(broker)) {
      read.problem(`broker_hosts: "${broker}" is not host:port`);
    }
  }
  const topics = read.list('topics');
  for (const topic of topics) {
    if (!kafkaTopicName.test(topic)) read.problem(`topics: "${topic}" is not a Kafka topic name`);
  }
  const optionalTopic = (name: string): string | undefined => {
    const topic = read.string(name)?.trim();
    if (topic !== undefined && !kafkaTopicName.test(topic)) {
      read.problem(`${name}: "${topic}" is not a Kafka topic name`);
    }
    return topic;
  };
  const replyTopic = optionalTopic('reply_topic');
  const deadLetterTopic = optionalTopic('dead_letter_topic');
  const tls = readTlsFiles(read, read.boolean('tls', false));
  const mechanism = read.string('sasl_mechanism');
  let sasl: KafkaSettings['sasl'];
  if (mechanism === undefined && (read.string('username_file') ?? read.string('password_file'))) {
    read.problem(
      'username_file, password_file: need sasl_mechanism (plain, scram-sha-256 or scram-sha-512)',
    );
  }
  if (mechanism !== undefined) {
    const choice = mechanism.trim().toLowerCase();
    const username = read.fileText('username_file')?.trim();
    const password = read.fileText('password_file')?.trim();
    if (choice !== 'plain' && choice !== 'scram-sha-256' && choice !== 'scram-sha-512') {
      read.problem(`sasl_mechanism: "${mechanism}" is not plain, scram-sha-256 or scram-sha-512`);
    } else if (username === undefined || password === undefined) {
      read.problem('sasl_mechanism: needs username_file and password_file');
    } else {
      sasl = { mechanism: choice, username, password };
    }
  }
  return {
    brokers: brokers.length > 0 ? brokers : ['127.0.0.1:9092'],
    group: read.string('group', 'faas-group-1'),
    topics,
    initialOffset: read.oneOf('initial_offset', ['oldest', 'newest'] as const, 'oldest'),
    maxBytes: read.integer('max_bytes', 1_048_576, { min: 1024, max: 1_073_741_824 }),
    ...(replyTopic ? { replyTopic } : {}),
    ...(deadLetterTopic ? { deadLetterTopic } : {}),
    ...(tls ? { tls } : {}),
    ...(sasl ? { sasl } : {}),
  };
}

/**
 * `kafka`: each record of a subscribed topic goes to the functions whose `topic` annotation names
 * it (kafka-source.ts), its offset committed once they all answered. Settings by the names of
 * OpenFaaS's Kafka connector; synchronous by default, as its.
 */
export const kafkaKind = {
  name: 'kafka',
  connector: 'kafka-connector',
  ownThread: true,
  readConfig(env) {
    const read = new EnvReader(env);
    const connector = readConnectorSettings(read);
    return read.done({ connector, kafka: readKafkaSettings(read) });
  },
  async createSource({ config, topicMap, logger, registry }): Promise<KafkaSource> {
    const { KafkaSource } = await import('./kafka-source.js');
    return new KafkaSource({
      settings: config.kafka,
      topicMap,
      logger,
      rebuildIntervalMs: config.connector.rebuildIntervalMs,
      maxInflight: config.connector.maxInflight,
      ...(registry ? { registry } : {}),
    });
  },
} satisfies ConnectorKind<KafkaConfig, KafkaSource>;
