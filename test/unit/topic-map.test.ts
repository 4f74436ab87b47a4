import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TopicMap, type ListedFunction } from '../../connectors/sdk/topic-map.js';
import { exactTopics, mqttTopics, natsTopics } from '../../connectors/sdk/topic-matchers.js';

const fn = (name: string, topic?: string, namespace = ''): ListedFunction => ({
  name,
  namespace,
  annotations: topic === undefined ? {} : { topic },
});

describe('topic map', () => {
  it('splits topic annotations on commas, trims them, and names functions as OpenFaaS does', () => {
    const map = TopicMap.fromFunctions([
      fn('a', 'orders, payments,,'),
      fn('b', 'orders', 'openfaas-fn'),
      fn('c'),
    ]);
    assert.deepEqual(map.topics(), ['orders', 'payments']);
    assert.deepEqual(
      map.match('orders').map((t) => t.function),
      ['a', 'b.openfaas-fn'],
    );
    assert.deepEqual(
      map.match('payments').map((t) => t.function),
      ['a'],
    );
    assert.deepEqual(map.match('refunds'), []);
    assert.deepEqual(map.match('order'), [], 'exact: no prefixes');
  });

  it('takes another delimiter, or none', () => {
    assert.deepEqual(TopicMap.fromFunctions([fn('a', 'x;y')], { delimiter: ';' }).topics(), [
      'x',
      'y',
    ]);
    assert.deepEqual(TopicMap.fromFunctions([fn('a', 'x,y')], { delimiter: '' }).topics(), ['x,y']);
  });

  it('reaches a function once however many of its patterns match', () => {
    const map = TopicMap.fromFunctions([fn('a', 'sensors/+/t,sensors/#')], {
      matcher: mqttTopics,
    });
    assert.deepEqual(
      map.match('sensors/1/t').map((t) => t.function),
      ['a'],
    );
  });

  it('matches MQTT wildcards', () => {
    const yes: [string, string][] = [
      ['a/+/c', 'a/b/c'],
      ['a/#', 'a/b/c'],
      ['a/#', 'a'],
      ['#', 'a/b'],
      ['+/+', 'a/b'],
      ['a/b', 'a/b'],
      ['$share/group/a/+', 'a/b'],
    ];
    const no: [string, string][] = [
      ['a/+/c', 'a/b/d'],
      ['a/+', 'a/b/c'],
      ['a/b', 'a/b/c'],
      ['#', '$SYS/x'],
      ['+/x', '$SYS/x'],
      ['$share/group/a/+', 'a/b/c'],
    ];
    for (const [pattern, topic] of yes)
      assert.ok(mqttTopics(pattern, topic), `${pattern} ${topic}`);
    for (const [pattern, topic] of no)
      assert.ok(!mqttTopics(pattern, topic), `${pattern} ${topic}`);
  });

  it('matches NATS wildcards', () => {
    assert.ok(natsTopics('orders.*', 'orders.new'));
    assert.ok(natsTopics('orders.>', 'orders.new.eu'));
    assert.ok(!natsTopics('orders.>', 'orders'));
    assert.ok(!natsTopics('orders.*', 'orders.new.eu'));
    assert.ok(natsTopics('*.new', 'orders.new'));
    assert.ok(!exactTopics('orders.*', 'orders.new'));
  });
});
