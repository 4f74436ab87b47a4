import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kafkaKind } from '../../connectors/kafka/kafka-kind.js';
import { PartitionOffsets } from '../../connectors/kafka/partition-offsets.js';
import { batchBody, batchResults, batchSizeOf } from '../../connectors/kafka/record-batches.js';
import { recordEvent } from '../../connectors/kafka/record-event.js';
import { ConfigError } from '../../core/errors.js';

describe('Kafka records', () => {
  it('commits past a record only once it and every earlier one are done', () => {
    const offsets = new PartitionOffsets();
    for (const offset of ['10', '11', '12', '13']) offsets.take(offset);
    assert.equal(offsets.finish('12'), undefined);
    assert.equal(offsets.finish('11'), undefined);
    assert.equal(offsets.finish('10'), '12');
    assert.equal(offsets.inHand, 1);
    assert.equal(offsets.finish('13'), '13');
    assert.equal(offsets.inHand, 0);
  });

  it("sends OpenFaaS's Kafka headers, a key or header that is not text as base64", () => {
    const event = recordEvent('orders', 3, {
      key: Buffer.from([0xff, 0x00, 0x01]),
      value: Buffer.from('{"id":1}'),
      offset: '42',
      timestamp: '0',
      headers: {
        'content-type': Buffer.from('application/json'),
        trace: Buffer.from('abc'),
        blob: Buffer.from([0xc3, 0x28]),
        'bad name': Buffer.from('x'),
        many: [Buffer.from('first'), Buffer.from('last')],
      },
    });
    assert.deepEqual(event.headers, {
      'X-Kafka-Partition': '3',
      'X-Kafka-Offset': '42',
      'X-Kafka-Key': Buffer.from([0xff, 0x00, 0x01]).toString('base64'),
      'X-Kafka-Key-Enc': 'b64',
      'Content-Type': 'application/json',
      'X-Kafka-trace': 'abc',
      'X-Kafka-blob': Buffer.from([0xc3, 0x28]).toString('base64'),
      'X-Kafka-blob-Enc': 'b64',
      'X-Kafka-many': 'last',
    });
    assert.equal(Buffer.from(event.body).toString(), '{"id":1}');
    assert.equal(event.id, 'orders/3/42');
    const keyed = recordEvent('orders', 0, {
      key: Buffer.from('user-7'),
      value: null,
      offset: '0',
      timestamp: '0',
    });
    assert.equal(keyed.headers['X-Kafka-Key'], 'user-7');
    assert.equal(keyed.body.length, 0);
    // UTF-8 text goes as its bytes, as Go's clients send it, Latin-1 or not (node writes each
    // character of the value as one byte); text with a control character goes as base64.
    const euro = recordEvent('orders', 0, {
      key: Buffer.from('€1'),
      value: null,
      offset: '1',
      timestamp: '0',
      headers: {
        price: Buffer.from('5 €'),
        city: Buffer.from('Zürich'),
        line: Buffer.from('a\r\nb'),
      },
    });
    const wire = (header: string | undefined) =>
      Buffer.from(header ?? '', 'latin1').toString('utf8');
    assert.equal(wire(euro.headers['X-Kafka-Key']), '€1');
    assert.equal(euro.headers['X-Kafka-Key-Enc'], undefined);
    assert.equal(wire(euro.headers['X-Kafka-price']), '5 €');
    assert.equal(wire(euro.headers['X-Kafka-city']), 'Zürich');
    assert.equal(euro.headers['X-Kafka-line'], Buffer.from('a\r\nb').toString('base64'));
    assert.equal(euro.headers['X-Kafka-line-Enc'], 'b64');
  });

  it('reads its settings by OpenFaaS names, every problem at once', () => {
    const config = kafkaKind.readConfig({
      broker_hosts: 'a:9092, b:9093',
      topics: 'orders,payments',
    });
    assert.deepEqual(config.kafka.brokers, ['a:9092', 'b:9093']);
    assert.deepEqual(config.kafka.topics, ['orders', 'payments']);
    assert.equal(config.kafka.group, 'faas-group-1');
    assert.equal(config.kafka.initialOffset, 'oldest');
    assert.throws(
      () =>
        kafkaKind.readConfig({
          broker_hosts: 'no-port',
          topics: 'bad topic',
          initial_offset: 'latest',
          sasl_mechanism: 'gssapi',
        }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        for (const name of ['broker_hosts', 'topics', 'initial_offset', 'sasl_mechanism']) {
          assert.match(error.message, new RegExp(name));
        }
        return true;
      },
    );
  });
});

describe('Kafka batches', () => {
  it('reads the batch size from its annotation, 1 when unset or out of range', () => {
    assert.equal(batchSizeOf({}), 1);
    assert.equal(batchSizeOf({ 'fnbus.kafka.batch': '100' }), 100);
    for (const bad of ['1', '0', '10001', 'ten', '-5']) {
      assert.equal(batchSizeOf({ 'fnbus.kafka.batch': bad }), 1, bad);
    }
  });

  it('sends records as JSON, text as text, a value that is not text in base64', () => {
    const body = batchBody([
      recordEvent('t', 1, {
        key: Buffer.from('k€'),
        value: Buffer.from('one'),
        offset: '5',
        timestamp: '0',
        headers: { city: Buffer.from('Zürich') },
      }),
      recordEvent('t', 1, {
        key: null,
        value: Buffer.from([0xff, 0xfe]),
        offset: '6',
        timestamp: '0',
      }),
    ]);
    const parsed = JSON.parse(Buffer.from(body).toString()) as {
      records: Record<string, unknown>[];
    };
    assert.deepEqual(parsed.records[0], {
      topic: 't',
      partition: 1,
      offset: '5',
      // Text as text in JSON, though a header carries its UTF-8 bytes.
      key: 'k€',
      headers: { 'X-Kafka-Partition': '1', 'X-Kafka-Offset': '5', 'X-Kafka-city': 'Zürich' },
      value: 'one',
    });
    assert.equal(parsed.records[1]?.value, Buffer.from([0xff, 0xfe]).toString('base64'));
    assert.equal(parsed.records[1]?.valueEncoding, 'base64');
    assert.equal(parsed.records[1]?.key, undefined);
  });

  it('takes a result per record, bare or under results; anything else is no list', () => {
    const body = (value: unknown) => Buffer.from(JSON.stringify(value));
    assert.deepEqual(batchResults(body([200, 500, 204]), 3), [true, false, true]);
    assert.deepEqual(batchResults(body({ results: [{ status: 200 }, { status: 503 }, {}] }), 3), [
      true,
      false,
      false,
    ]);
    assert.equal(batchResults(body([200]), 3), undefined);
    assert.equal(batchResults(Buffer.from('ok'), 1), undefined);
  });
});
