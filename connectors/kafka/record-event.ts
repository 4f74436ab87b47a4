import type { SourceEvent } from '../../core/source.js';
import { addBrokerHeader, setBrokerHeader } from '../sdk/event-headers.js';

/** A Kafka record as kafkajs hands it (the parts an event is made of). */
export interface KafkaRecord {
  key: Buffer | null;
  value: Buffer | null;
  offset: string;
  timestamp: string;
  headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
}

/**
 * A record as the event its functions get, with the headers OpenFaaS's Kafka connector sends:
 * `X-Kafka-Partition`, `X-Kafka-Offset`, `X-Kafka-Key` and `X-Kafka-<name>` for each record
 * header, UTF-8 text as its bytes, as Go sends it (anything else base64, with `X-Kafka-Key-Enc:
 * b64` or `X-Kafka-<name>-Enc: b64`: setBrokerHeader). `Content-Type` from a record header of
 * that name.
 */
export function recordEvent(topic: string, partition: number, record: KafkaRecord): SourceEvent {
  const headers: Record<string, string> = {
    'X-Kafka-Partition': String(partition),
    'X-Kafka-Offset': record.offset,
  };
  if (record.key !== null) setBrokerHeader(headers, 'X-Kafka-Key', record.key);
  for (const name in record.headers) {
    const raw = record.headers[name];
    // A header sent several times: the last, as a map of headers keeps one.
    const value = Array.isArray(raw) ? raw.at(-1) : raw;
    if (value !== undefined) addBrokerHeader(headers, 'X-Kafka-', name, value);
  }
  return {
    topic,
    body: record.value ?? new Uint8Array(),
    headers,
    id: `${topic}/${partition}/${record.offset}`,
  };
}
