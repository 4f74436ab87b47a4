import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { InvokeRequest, InvokeResult, Invoker } from '../../core/invoker.js';
import { ValidationError } from '../../core/errors.js';
import { defaultRetryPolicy } from '../../core/retry-policy.js';
import {
  Controller,
  DeliveryError,
  TopicMapNotBuiltError,
  type ControllerOptions,
  type InvokerResponse,
} from '../../connectors/sdk/controller.js';
import { TopicMap, type ListedFunction } from '../../connectors/sdk/topic-map.js';
import { ReplyPublisher } from '../../connectors/sdk/response-subscribers.js';
import { silentLogger } from '../../core/logger.js';
import { waitFor } from '../helpers/wait.js';
import type { SourceReply } from '../../core/source.js';

/** An Invoker that answers from a script and records every call (the seam, not a server). */
class ScriptedInvoker implements Invoker {
  readonly calls: { fn: string; request: InvokeRequest; at: number }[] = [];
  inFlight = 0;
  maxInFlight = 0;
  readonly #answer: (fn: string, n: number) => Partial<InvokeResult> | Error;
  readonly #workMs: number;

  constructor(answer: (fn: string, n: number) => Partial<InvokeResult> | Error, workMs = 0) {
    this.#answer = answer;
    this.#workMs = workMs;
  }

  async invoke(fn: string, request: InvokeRequest): Promise<InvokeResult> {
    this.calls.push({ fn, request, at: Date.now() });
    const n = this.calls.filter((call) => call.fn === fn).length;
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.#workMs) await sleep(this.#workMs);
      const answer = this.#answer(fn, n);
      if (answer instanceof Error) throw answer;
      return { status: 200, headers: {}, body: new Uint8Array(), durationMs: 1, ...answer };
    } finally {
      this.inFlight -= 1;
    }
  }
}

const functions: ListedFunction[] = [
  { name: 'a', namespace: '', annotations: { topic: 'orders' } },
  {
    name: 'b',
    namespace: '',
    annotations: { topic: 'orders', 'fnbus.connector.invocation': 'async' },
  },
];

function controller(
  sync: Invoker,
  more: Partial<ControllerOptions> = {},
  async: Invoker = new ScriptedInvoker(() => ({ status: 202 })),
) {
  const map = TopicMap.fromFunctions(functions);
  return new Controller({
    connector: 'test-connector',
    topicMap: () => map,
    sync,
    async,
    asyncInvocation: false,
    contentType: 'text/plain',
    maxInflight: 8,
    retry: { ...defaultRetryPolicy, maxAttempts: 3, minWaitMs: 10, maxWaitMs: 40 },
    ...more,
  });
}

const event = (headers: Record<string, string> = {}) => ({
  topic: 'orders',
  body: Buffer.from('{"id":1}'),
  headers,
});

describe('connector controller', () => {
  it('calls every function of the topic with X-Topic, X-Connector and a Content-Type', async () => {
    const sync = new ScriptedInvoker(() => ({ status: 200 }));
    const async = new ScriptedInvoker(() => ({ status: 202, headers: { 'x-call-id': 'c1' } }));
    const responses: InvokerResponse[] = [];
    await controller(sync, { subscribers: [{ response: (r) => responses.push(r) }] }, async).emit(
      event({ 'X-Kafka-Partition': '3' }),
    );
    assert.deepEqual(
      sync.calls.map((c) => c.fn),
      ['a'],
    );
    assert.deepEqual(
      async.calls.map((c) => c.fn),
      ['b'],
      'b asks for async by annotation',
    );
    const { request } = sync.calls[0]!;
    assert.equal(request.method, 'POST');
    assert.equal(Buffer.from(request.body).toString(), '{"id":1}');
    assert.equal(request.headers['X-Topic'], 'orders');
    assert.equal(request.headers['X-Connector'], 'test-connector');
    assert.equal(request.headers['Content-Type'], 'text/plain');
    assert.equal(request.headers['X-Kafka-Partition'], '3');
    assert.deepEqual(responses.map((r) => [r.function, r.status, r.async]).sort(), [
      ['a', 200, false],
      ['b', 202, true],
    ]);
  });

  it('keeps the event’s own Content-Type', async () => {
    const sync = new ScriptedInvoker(() => ({ status: 200 }));
    await controller(sync).emit(event({ 'content-type': 'application/json' }));
    const headers = sync.calls[0]!.request.headers;
    assert.equal(headers['content-type'], 'application/json');
    assert.equal(headers['Content-Type'], undefined);
  });

  it('retries a retried status and no answer, then resolves on success', async () => {
    const sync = new ScriptedInvoker((_fn, n) =>
      n === 1 ? new Error('connection refused') : n === 2 ? { status: 503 } : { status: 200 },
    );
    const responses: InvokerResponse[] = [];
    await controller(sync, { subscribers: [{ response: (r) => responses.push(r) }] }).emit(event());
    assert.equal(sync.calls.length, 3);
    const a = responses.find((r) => r.function === 'a');
    assert.equal(a?.attempts, 3);
    assert.equal(a?.status, 200);
    assert.equal(a?.error, undefined);
  });

  it('retries an error fnbus made, not a success that carries X-OpenFaaS-Internal', async () => {
    const sync = new ScriptedInvoker((_fn, n) =>
      n === 1 ? { status: 404, headers: { 'X-OpenFaaS-Internal': 'proxy' } } : { status: 200 },
    );
    await controller(sync).emit(event());
    assert.equal(sync.calls.length, 2, 'the gateway’s own 404 is retried');
    const marked = new ScriptedInvoker(() => ({
      status: 200,
      headers: { 'x-openfaas-internal': 'of-watchdog' },
    }));
    await controller(marked).emit(event());
    assert.equal(marked.calls.length, 1, 'a 200 is delivered, whatever header it carries');
  });

  it('rejects an event while no topic map was built: never resolves as if delivered', async () => {
    const sync = new ScriptedInvoker(() => ({ status: 200 }));
    const c = controller(sync, { topicMap: () => undefined });
    await assert.rejects(c.emit(event()), TopicMapNotBuiltError);
    assert.equal(sync.calls.length, 0);
  });

  it('delivers to the functions an event names, of those its topic reaches', async () => {
    const sync = new ScriptedInvoker(() => ({ status: 200 }));
    const async = new ScriptedInvoker(() => ({ status: 202 }));
    const responses = await controller(sync, {}, async).emit({
      ...event(),
      functions: ['b', 'gone'],
    });
    assert.deepEqual(
      responses.map((r) => r.function),
      ['b'],
    );
    assert.equal(sync.calls.length, 0);
  });

  it('does not retry a status outside the retried ones', async () => {
    const sync = new ScriptedInvoker(() => ({ status: 400 }));
    await controller(sync).emit(event());
    assert.equal(sync.calls.length, 1);
  });

  it('rejects after the last attempt and hands the delivery to the dead letters', async () => {
    const sync = new ScriptedInvoker(() => ({ status: 500 }));
    const buried: InvokerResponse[] = [];
    const emitting = controller(sync, {
      deadLetters: { record: (r) => Promise.resolve(void buried.push(r)) },
    }).emit(event());
    await assert.rejects(emitting, (error: unknown) => {
      assert.ok(error instanceof DeliveryError);
      assert.equal(error.status, 502);
      assert.equal(error.message, 'not delivered to a (answered 500 after 3 attempts)');
      assert.deepEqual(
        error.failed.map((r) => r.function),
        ['a'],
      );
      return true;
    });
    assert.equal(sync.calls.length, 3);
    assert.equal(buried.length, 1);
    assert.equal(buried[0]?.status, 500);
    assert.match(buried[0]?.error ?? '', /500 after 3 attempts/);
  });

  it('does not retry a call no request can carry, and says why', async () => {
    const sync = new ScriptedInvoker(
      () => new ValidationError('cannot be sent: header X-Bad: a value has a character'),
    );
    const buried: InvokerResponse[] = [];
    const emitting = controller(sync, {
      deadLetters: { record: (r) => Promise.resolve(void buried.push(r)) },
    }).emit(event({ 'X-Bad': 'a\r\nb' }));
    await assert.rejects(emitting, DeliveryError);
    assert.equal(sync.calls.length, 1);
    assert.match(buried[0]?.error ?? '', /^cannot be sent: header X-Bad/);
  });

  it('holds a function back for Retry-After after a 429', async () => {
    const sync = new ScriptedInvoker((_fn, n) =>
      n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 },
    );
    await controller(sync).emit(event());
    const [first, second] = sync.calls;
    assert.ok(second!.at - first!.at >= 950, `waited ${second!.at - first!.at} ms`);
  });

  it('keeps at most max_inflight calls in flight', async () => {
    const sync = new ScriptedInvoker(() => ({ status: 200 }), 20);
    const c = controller(sync, { maxInflight: 3 });
    await Promise.all(Array.from({ length: 12 }, () => c.emit(event())));
    assert.equal(sync.calls.length, 12);
    assert.equal(sync.maxInFlight, 3);
  });

  it('hands each synchronous answer to the event’s reply, where its source has one', async () => {
    const sync = new ScriptedInvoker(() => ({
      status: 201,
      headers: { 'content-type': 'text/plain' },
      body: Buffer.from('made'),
    }));
    const replies: SourceReply[] = [];
    const c = controller(sync, { subscribers: [new ReplyPublisher(silentLogger)] });
    await c.emit({
      ...event(),
      reply: (answer) => Promise.resolve(void replies.push(answer)),
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      replies.map((r) => [r.function, r.status, Buffer.from(r.body).toString()]),
      [['a', 201, 'made']],
      'b is invoked asynchronously: its 202 is not an answer',
    );
  });

  it('gives each reply a deadline: a reply topic that never takes it is let go', async () => {
    const sync = new ScriptedInvoker(() => ({ status: 200 }));
    let reason: unknown;
    const c = controller(sync, { subscribers: [new ReplyPublisher(silentLogger, 20)] });
    await c.emit({
      ...event(),
      reply: (_answer, signal) =>
        new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => resolve(void (reason = signal.reason))),
        ),
    });
    await waitFor(() => reason !== undefined, { what: 'the reply’s deadline' });
    assert.equal((reason as Error).name, 'TimeoutError');
  });

  it('does nothing for a topic no function takes', async () => {
    const sync = new ScriptedInvoker(() => ({ status: 200 }));
    await controller(sync).emit({ topic: 'refunds', body: new Uint8Array(), headers: {} });
    assert.equal(sync.calls.length, 0);
  });
});
