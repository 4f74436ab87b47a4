import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setBrokerHeader } from '../../connectors/sdk/event-headers.js';
import { headerText, utf8HeaderValue } from '../../core/http-headers.js';
import { isFieldValue } from '../../core/http-request-check.js';

describe('broker values as headers', () => {
  it('sends text as its UTF-8 bytes, which the watchdog reads back as the text', () => {
    for (const text of ['plain', 'Zürich', '5 €', '厨房 🍳']) {
      const value = utf8HeaderValue(text) as string;
      assert.ok(isFieldValue(value), `${text} can be sent`);
      assert.deepEqual(Buffer.from(value, 'latin1'), Buffer.from(text, 'utf8'));
      assert.equal(headerText(value), text);
    }
    assert.equal(utf8HeaderValue('a\r\nb'), undefined);
    assert.equal(utf8HeaderValue('nul\0'), undefined);
    assert.equal(utf8HeaderValue('tab\tok'), 'tab\tok');
    // Bytes that are not UTF-8 stay as they came.
    assert.equal(headerText('\xff\xfe'), '\xff\xfe');
  });

  it('sets base64 with -Enc: b64 for bytes that are not UTF-8 and text with a control', () => {
    const headers: Record<string, string> = {};
    setBrokerHeader(headers, 'X-Nats-Trace', 'abc');
    setBrokerHeader(headers, 'X-Kafka-Blob', Buffer.from([0xc3, 0x28]));
    setBrokerHeader(headers, 'X-Mqtt-Line', 'a\nb');
    setBrokerHeader(headers, 'X-Mqtt-City', 'Zürich');
    assert.deepEqual(headers, {
      'X-Nats-Trace': 'abc',
      'X-Kafka-Blob': Buffer.from([0xc3, 0x28]).toString('base64'),
      'X-Kafka-Blob-Enc': 'b64',
      'X-Mqtt-Line': Buffer.from('a\nb').toString('base64'),
      'X-Mqtt-Line-Enc': 'b64',
      'X-Mqtt-City': Buffer.from('Zürich').toString('latin1'),
    });
  });
});
