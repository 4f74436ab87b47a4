import { EnvReader } from '../../core/config.js';
import { readConnectorSettings, readTlsFiles, type TlsFiles } from '../sdk/config.js';
import type { ConnectorKind, KindConfig } from '../sdk/run-connector.js';
import { natsTopics } from '../sdk/topic-matchers.js';
import type { NatsSource } from './nats-source.js';

export interface NatsSettings {
  /** `nats://host:port` of each server (broker_host: a host, host:port or URL; several by comma). */
  servers: string[];
  /** Subjects named in the settings (topics); empty: the functions' `topic` annotations. */
  subjects: string[];
  /** Core NATS: the queue group replicas share messages in (queue_group). */
  queueGroup: string;
  /** JetStream: the stream to consume (stream); unset: core NATS subjects. */
  stream?: string;
  /** JetStream: the durable consumer's name (consumer). */
  consumer: string;
  /** JetStream: where a new consumer starts (initial_offset): every message kept, or new ones. */
  initialOffset: 'oldest' | 'newest';
  /** JetStream: how long a message may go unacknowledged before it is delivered again. */
  ackWaitMs: number;
  /** Credentials (username_file and password_file, or token_file) and TLS (tls, ca_file, …). */
  user?: string;
  pass?: string;
  token?: string;
  tls?: TlsFiles;
}

export interface NatsConfig extends KindConfig {
  nats: NatsSettings;
}

/** Whether `text` is a NATS subject or pattern: dot-separated tokens, `*` any one, `>` last. */
export function isNatsSubject(text: string): boolean {
  const tokens = text.split('.');
  return tokens.every(
    (token, i) =>
      token === '*' ||
      (token === '>' && i === tokens.length - 1) ||
      (token !== '' && !/[\s*>]/.test(token)),
  );
}

function readNatsSettings(read: EnvReader): NatsSettings {
  const servers = read
    .list('broker_host')
    .map((server) =>
      /^(nats|tls|wss?):\/\//.test(server)
        ? server
        : `nats://${server.includes(':') ? server : `${server}:4222`}`,
    );
  for (const server of servers) {
    if (!URL.canParse(server)) read.problem(`broker_host: "${server}" is not a host or URL`);
  }
  const subjects = read.list('topics');
  for (const subject of subjects) {
    if (!isNatsSubject(subject)) read.problem(`topics: "${subject}" is not a NATS subject`);
  }
  const user = read.fileText('username_file')?.trim();
  const pass = read.fileText('password_file')?.trim();
  if ((user === undefined) !== (pass === undefined)) {
    read.problem('username_file and password_file: give both or neither');
  }
  const token = read.fileText('token_file')?.trim();
  const tls = readTlsFiles(read, read.boolean('tls', false));
  const stream = read.string('stream')?.trim();
  if (stream !== undefined && !/^[^\s.*>/\\]+$/.test(stream)) {
    read.problem(`stream: "${stream}" is not a JetStream stream name`);
  }
  const consumer = read.string('consumer', 'fnbus-nats-connector').trim();
  if (!/^[^\s.*>/\\]+$/.test(consumer)) {
    read.problem(`consumer: "${consumer}" is not a JetStream consumer name`);
  }
  return {
    servers: servers.length > 0 ? servers : ['nats://127.0.0.1:4222'],
    subjects,
    queueGroup: read.string('queue_group', 'openfaas_nats_worker_group').trim(),
    ...(stream ? { stream } : {}),
    consumer,
    initialOffset: read.oneOf('initial_offset', ['oldest', 'newest'] as const, 'oldest'),
    ackWaitMs: read.durationMs('ack_wait', 30_000),
    ...(user !== undefined && pass !== undefined ? { user, pass } : {}),
    ...(token !== undefined ? { token } : {}),
    ...(tls ? { tls } : {}),
  };
}

/**
 * `nats`: messages on core NATS subjects (a queue group: replicas share them; a request's reply
 * subject answered with the function's reply) or a JetStream stream's durable consumer (each
 * message acknowledged once its functions answered: at least once) go to the functions whose
 * `topic` annotation names or matches the subject (`*`, `>`). Settings by the names of
 * OpenFaaS's NATS connector where it has them.
 */
export const natsKind = {
  name: 'nats',
  connector: 'nats-connector',
  ownThread: true,
  matcher: natsTopics,
  readConfig(env) {
    const read = new EnvReader(env);
    const connector = readConnectorSettings(read);
    return read.done({ connector, nats: readNatsSettings(read) });
  },
  async createSource({ config, topicMap, logger, registry }): Promise<NatsSource> {
    const { NatsSource } = await import('./nats-source.js');
    return new NatsSource({
      settings: config.nats,
      topicMap,
      logger,
      maxInflight: config.connector.maxInflight,
      ...(registry ? { registry } : {}),
    });
  },
} satisfies ConnectorKind<NatsConfig, NatsSource>;
