import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../core/errors.js';
import { filterProblem, subscriptionIdentifier } from '../../connectors/mqtt/mqtt-filters.js';
import { defaultClientId, loggableBroker, mqttKind } from '../../connectors/mqtt/mqtt-kind.js';

function problems(env: Record<string, string>): string[] {
  try {
    mqttKind.readConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return [...error.problems];
  }
  return [];
}

describe('mqtt settings', () => {
  it('defaults to a persistent MQTT 5 session at QoS 1 on the local broker', () => {
    const { mqtt, connector } = mqttKind.readConfig({});
    assert.deepEqual(mqtt, {
      brokerUrl: 'tcp://127.0.0.1:1883',
      topics: [],
      qos: 1,
      clientId: defaultClientId,
      clean: false,
      protocolVersion: 5,
      sessionExpirySeconds: 86_400,
      inflight: 64,
      order: 'topic',
    });
    assert.equal(connector.contentType, 'application/json');
    assert.equal(connector.asyncInvocation, false);
  });

  it("reads OpenFaaS's names and fnbus's own", () => {
    const { mqtt } = mqttKind.readConfig({
      broker: 'ssl://broker.example:8883',
      topic: 'a/+/c, $share/workers/jobs/#',
      qos: '2',
      client_id: 'replica-1',
      clean: 'true',
      username: 'user',
      password: 'secret',
      FNBUS_MQTT_VERSION: '3.1.1',
      FNBUS_MQTT_SESSION_EXPIRY: '10m',
      FNBUS_MQTT_INFLIGHT: '8',
      FNBUS_MQTT_ORDER: 'none',
    });
    assert.deepEqual(mqtt, {
      brokerUrl: 'ssl://broker.example:8883',
      topics: ['a/+/c', '$share/workers/jobs/#'],
      qos: 2,
      clientId: 'replica-1',
      clean: true,
      username: 'user',
      password: 'secret',
      protocolVersion: 4,
      sessionExpirySeconds: 600,
      inflight: 8,
      order: 'none',
    });
  });

  it('takes every broker scheme mqtt.js speaks, and nothing else', () => {
    for (const scheme of ['mqtt', 'mqtts', 'tcp', 'ssl', 'tls', 'ws', 'wss']) {
      assert.deepEqual(problems({ broker: `${scheme}://h:1` }), [], scheme);
    }
    assert.match(problems({ broker: 'http://h:1' }).join(), /^broker: "http:\/\/h:1\/" is not/);
    assert.match(problems({ broker: 'localhost:1883' }).join(), /^broker: /);
  });

  it('reports every problem at once, naming each variable', () => {
    const found = problems({
      broker: 'mqtt://h',
      topics: 'a/#/b,x+/y',
      qos: '5',
      FNBUS_MQTT_VERSION: '3',
      FNBUS_MQTT_INFLIGHT: '0',
      cert_file: '/nonexistent',
      gateway_url: 'ftp://x',
    });
    assert.deepEqual(
      found.map((problem) => problem.split(':')[0]),
      [
        'gateway_url',
        'topics',
        'topics',
        'FNBUS_MQTT_VERSION',
        'cert_file',
        'qos',
        'FNBUS_MQTT_INFLIGHT',
      ],
    );
  });

  it('wants TLS files with a TLS scheme, and a key with a certificate', () => {
    const file = new URL(import.meta.url).pathname;
    assert.match(problems({ broker: 'mqtt://h', ca_file: file }).join(), /use mqtts:\/\//);
    assert.match(problems({ broker: 'mqtts://h', cert_file: file }).join(), /needs both/);
    assert.deepEqual(problems({ broker: 'mqtts://h', cert_file: file, key_file: file }), []);
  });

  it('never logs the password of a broker URL', () => {
    assert.equal(loggableBroker('mqtt://u:secret@h:1883'), 'mqtt://u:***@h:1883');
  });
});

describe('mqtt filters', () => {
  it('takes filters a broker takes', () => {
    for (const filter of ['a', 'a/b', '+', '#', 'a/+/c', 'a/#', '/a', '$share/g/a/+', '$SYS/#']) {
      assert.equal(filterProblem(filter), undefined, filter);
    }
  });

  it('refuses the others, saying why', () => {
    assert.equal(filterProblem(''), 'is empty');
    assert.equal(filterProblem('a/#/b'), 'has # before its last level');
    assert.match(filterProblem('a+/b') ?? '', /inside a level/);
    assert.match(filterProblem('a/b#') ?? '', /inside a level/);
    assert.match(filterProblem('$share//a') ?? '', /no share group/);
    assert.match(filterProblem('$share/g+/a') ?? '', /no share group/);
    assert.match(filterProblem('$share/g') ?? '', /no filter/);
    assert.match(filterProblem('$share/g/a/#/b') ?? '', /# before/);
  });

  it('gives a filter the same subscription identifier every run, within MQTT 5 range', () => {
    const id = subscriptionIdentifier('sensors/+/temp');
    assert.equal(id, subscriptionIdentifier('sensors/+/temp'));
    assert.notEqual(id, subscriptionIdentifier('sensors/#'));
    for (const filter of ['', 'a', '#', 'x'.repeat(1000)]) {
      const each = subscriptionIdentifier(filter);
      assert.ok(each >= 1 && each <= 268_435_455, `${filter}: ${each}`);
    }
  });
});
