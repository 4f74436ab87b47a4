import { isFieldValue, isHttpToken } from '../../core/http-request-check.js';
import type { SourceEvent } from '../../core/source.js';

/** A Kafka record as kafkajs hands it (the parts an event is made of). */
export interface KafkaRecord {
  key: Buffer | null;
  value: Buffer | null;
  offset: string;
  timestamp: string;
  headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The text of `bytes` when it is UTF-8 that a header can carry as is. */
function headerText(bytes: Buffer | string): string | undefined {
  let text: string;
  try {
    text = typeof bytes === 'string' ? bytes : utf8.decode(bytes);
  } catch {
    return undefined;
  }
  return isFieldValue(text) ? text : undefined;
}

/** A record header's name as an HTTP header name can carry it, else undefined (it is skipped). */
function headerName(name: string): string | undefined {
  return isHttpToken(name) ? `X-Kafka-${name}` : undefined;
}

/**
 * A record as the event its functions get, with the headers OpenFaaS's Kafka connector sends:
 * `X-Kafka-Partition`, `X-Kafka-Offset`, `X-Kafka-Key` (base64, with `X-Kafka-Key-Enc: b64`, when
 * a header cannot carry the key as text: not UTF-8, or past Latin-1) and `X-Kafka-<name>` for each record header (base64 with
 * `X-Kafka-<name>-Enc: b64` likewise). `Content-Type` from a record header of that name.
 */
export function recordEvent(topic: string, partition: number, record: KafkaRecord): SourceEvent {
  const headers: Record<string, string> = {
    'X-Kafka-Partition': String(partition),
    'X-Kafka-Offset': record.offset,
  };
  if (record.key !== null) {
    const key = headerText(record.key);
    if (key === undefined) {
      headers['X-Kafka-Key'] = record.key.toString('base64');
      headers['X-Kafka-Key-Enc'] = 'b64';
    } else {
      headers['X-Kafka-Key'] = key;
    }
  }
  for (const [name, raw] of Object.entries(record.headers ?? {})) {
    if (raw === undefined) continue;
    // A header sent several times: the last, as a map of headers keeps one.
    const value = Array.isArray(raw) ? raw.at(-1) : raw;
    if (value === undefined) continue;
    if (name.toLowerCase() === 'content-type') {
      const type = headerText(value);
      if (type !== undefined) headers['Content-Type'] = type;
      continue;
    }
    const header = headerName(name);
    if (header === undefined) continue;
    const text = headerText(value);
    if (text === undefined) {
      headers[header] = Buffer.from(value).toString('base64');
      headers[`${header}-Enc`] = 'b64';
    } else {
      headers[header] = text;
    }
  }
  return {
    topic,
    body: record.value ?? new Uint8Array(),
    headers,
    id: `${topic}/${partition}/${record.offset}`,
  };
}
