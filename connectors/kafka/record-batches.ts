import { headerText } from '../../core/http-headers.js';
import type { SourceEvent } from '../../core/source.js';

/**
 * A function's batch size (`fnbus.kafka.batch`): up to that many records of a partition in one
 * call; 1 (the default, or a value that is not a whole number from 2 to 10,000) is one a call.
 */
export const BatchAnnotation = 'fnbus.kafka.batch';
export const maxBatchRecords = 10_000;

export function batchSizeOf(annotations: Readonly<Record<string, string>>): number {
  const text = annotations[BatchAnnotation]?.trim();
  if (text === undefined || !/^\d+$/.test(text)) return 1;
  const size = Number(text);
  return size >= 2 && size <= maxBatchRecords ? size : 1;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The body of a batch call: `{"records":[{topic, partition, offset, key?, headers, value}]}`, a
 * value that is not UTF-8 text in base64 with `valueEncoding: "base64"`, a key as its header
 * carries it (`keyEncoding: "base64"` when that is base64);
 * `headers` are the ones a single record's call carries (`X-Kafka-…`).
 */
export function batchBody(events: readonly SourceEvent[]): Uint8Array {
  const records = events.map((event) => {
    // The headers' values as text again (a header carries text past ASCII as its UTF-8 bytes).
    const headers: Record<string, string> = {};
    for (const name in event.headers) headers[name] = headerText(event.headers[name] as string);
    const { 'X-Kafka-Key': key, 'X-Kafka-Key-Enc': keyEnc } = headers;
    delete headers['X-Kafka-Key'];
    delete headers['X-Kafka-Key-Enc'];
    let value: string;
    let valueEncoding: string | undefined;
    try {
      value = utf8.decode(event.body);
    } catch {
      value = Buffer.from(event.body).toString('base64');
      valueEncoding = 'base64';
    }
    return {
      topic: event.topic,
      partition: Number(headers['X-Kafka-Partition']),
      offset: headers['X-Kafka-Offset'],
      ...(key === undefined ? {} : { key, ...(keyEnc === 'b64' ? { keyEncoding: 'base64' } : {}) }),
      headers,
      value,
      ...(valueEncoding ? { valueEncoding } : {}),
    };
  });
  return Buffer.from(JSON.stringify({ records }));
}

/**
 * Which records of a batch the function took, from its answer: a JSON array with one entry per
 * record, in order (a status, or an object with a `status`), bare or as `{"results": [...]}`; a
 * 2xx status is taken. Undefined when the answer is not such a list: the call's status then
 * stands for every record.
 */
export function batchResults(body: Uint8Array, count: number): boolean[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    return undefined;
  }
  const list =
    parsed !== null && typeof parsed === 'object' && 'results' in parsed ? parsed.results : parsed;
  if (!Array.isArray(list) || list.length !== count) return undefined;
  return list.map((entry: unknown) => {
    const status =
      typeof entry === 'number'
        ? entry
        : entry !== null && typeof entry === 'object'
          ? (entry as { status?: unknown }).status
          : undefined;
    return typeof status === 'number' && status >= 200 && status < 300;
  });
}
