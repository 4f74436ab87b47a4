import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Registry } from 'prom-client';
import type { CallRecord, DeadLetter, DeadLetterPage, Queue } from '../../core/queue.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { GatewayInvoker } from '../../client/gateway-invoker.js';
import { QueueWorker } from '../../queue/worker.js';
import { WorkerMetrics } from '../../queue/worker-metrics.js';
import { request, type HttpResult } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, fprocess, makeTempDir } from '../helpers/watchdog.js';

// A full collection before each measure of the heap (test processes have no --expose-gc).
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** How much this process's heap (and buffers) grows at most while `work` runs. */
async function peakGrowth<T>(work: () => Promise<T>): Promise<{ result: T; growth: number }> {
  collectGarbage();
  const used = () => {
    const memory = process.memoryUsage();
    return memory.heapUsed + memory.external;
  };
  const base = used();
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, used())), 2);
  try {
    const result = await work();
    peak = Math.max(peak, used());
    return { result, growth: peak - base };
  } finally {
    clearInterval(sampler);
  }
}

/** One request a callback receiver got. */
interface Received {
  at: number;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A callback receiver: answers each path's queued statuses in turn, then 200. */
class CallbackReceiver {
  readonly received: Received[] = [];
  readonly #answers = new Map<string, number[]>();
  readonly #server: Server;
  url = '';

  constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const path = req.url ?? '/';
        this.received.push({
          at: Date.now(),
          path,
          headers: req.headers,
          body: Buffer.concat(chunks).toString(),
        });
        const status = this.#answers.get(path)?.shift() ?? 200;
        const headers = status >= 300 && status < 400 ? { Location: `${this.url}/elsewhere` } : {};
        res.writeHead(status, headers).end();
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** The next requests to `path` get these statuses, in order. */
  answer(path: string, ...statuses: number[]): void {
    this.#answers.set(path, statuses);
  }

  to(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

export interface AsyncPathSubject {
  /** A fresh queue on the backend under test (a new queue name each time). */
  open(options?: { maxQueuedCalls?: number }): Promise<Queue>;
  close(): Promise<void>;
  /** The largest dead letter's body the backend keeps (default 1 MiB). */
  letterBytes?: number;
}

/**
 * The async path end to end on one queue backend: the gateway's async routes, the worker's
 * retries, dead letters, callbacks, cancellation, idempotency and concurrency, over real
 * function processes.
 */
export function asyncPathSuite(name: string, makeSubject: () => Promise<AsyncPathSubject>): void {
  describe(`async path on ${name}`, () => {
    let subject: AsyncPathSubject;
    let queue: Queue;
    let provider: ProcessProvider;
    let gateway: ReturnType<typeof buildGateway>;
    let invoker: GatewayInvoker;
    let url: string;
    const stopWorker = new AbortController();
    let working: Promise<void>;
    const callbacks = new CallbackReceiver();
    const fn = `echo-${randomUUID().slice(0, 8)}`;
    const limited = `limited-${randomUUID().slice(0, 8)}`;

    const server = (service: string, annotations: Record<string, string> = {}) =>
      provider.deploy({
        service,
        image: 'fnbus/node-http-server',
        envProcess: fprocess('node', fixture('node-http-server.cjs')),
        envVars: { mode: 'http' },
        annotations,
      });
    const ready = (service: string) =>
      waitFor(async () => (await provider.get(service))?.availableReplicas === 1, {
        timeoutMs: 15_000,
        what: `${service} to be ready`,
      });
    const submit = (path: string, options: Parameters<typeof request>[1] = {}) =>
      request(`${url}/async-function/${path}`, { method: 'POST', body: 'x', ...options });
    const callIdOf = (res: HttpResult) => {
      assert.equal(res.status, 202, res.text);
      return String(res.headers['x-call-id']);
    };
    const settled = (callId: string, timeoutMs = 10_000) =>
      waitFor(
        async () => {
          const res = await request(`${url}/system/calls/${callId}`);
          if (res.status !== 200) return false;
          const record = JSON.parse(res.text) as CallRecord;
          return ['succeeded', 'failed', 'dead-lettered', 'cancelled'].includes(record.state)
            ? record
            : false;
        },
        { timeoutMs, what: `call ${callId} to be over` },
      );

    before(async () => {
      subject = await makeSubject();
      queue = await subject.open();
      await callbacks.start();
      provider = new ProcessProvider({ stateDir: makeTempDir('fnbus-async-') });
      await provider.start();
      const registry = new Registry();
      gateway = buildGateway({
        provider,
        config: readConfig({ max_async_body_bytes: '1000', basic_auth: 'false' }),
        queue,
        registry,
      });
      await gateway.listen({ port: 0, host: '127.0.0.1' });
      url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
      invoker = new GatewayInvoker({ gatewayUrl: url, timeoutMs: 10_000 });
      const worker = new QueueWorker({
        queue,
        invoker,
        maxInflight: 8,
        retry: {
          maxAttempts: 3,
          retryCodes: new Set([429, 500, 502, 503, 504]),
          minWaitMs: 100,
          maxWaitMs: 400,
        },
        maxAgeMs: 0,
        callback: { attempts: 3, firstWaitMs: 100, timeoutMs: 5000 },
        metrics: new WorkerMetrics(registry, queue),
      });
      working = worker.run(stopWorker.signal);
      await server(fn);
      await server(limited, { 'fnbus.queue.max_inflight': '1' });
      await ready(fn);
      await ready(limited);
    });
    after(async () => {
      stopWorker.abort();
      await working;
      await gateway.close();
      await invoker.close();
      await queue.close();
      await provider.close();
      await callbacks.close();
      await subject.close();
    });

    it('queues with 202 and X-Call-Id, and replays method, path, query, headers and body', async () => {
      const res = await submit(`${fn}/orders/7?a=1&b=two`, {
        method: 'PUT',
        body: 'the order',
        headers: {
          'X-Callback-Url': `${callbacks.url}/replay`,
          'X-Test': 'kept',
          'Content-Type': 'text/plain',
        },
      });
      const callId = callIdOf(res);
      assert.equal(res.text, '');
      const record = await settled(callId);
      assert.equal(record.state, 'succeeded');
      assert.equal(record.attempts.length, 1);
      const [callback] = await waitFor(
        () => callbacks.to('/replay').length === 1 && callbacks.to('/replay'),
        {
          what: 'the callback',
        },
      );
      assert.equal(callback?.headers['x-call-id'], callId);
      assert.equal(callback?.headers['x-function-name'], fn);
      assert.equal(callback?.headers['x-function-status'], '201');
      assert.match(String(callback?.headers['x-duration-seconds']), /^\d+\.\d{6}$/);
      assert.equal(callback?.headers['x-retry'], '0');
      assert.equal(callback?.headers['x-retry-max'], '2');
      const echo = JSON.parse(callback?.body ?? '{}') as {
        method: string;
        url: string;
        body: string;
        headers: Record<string, string>;
      };
      assert.equal(echo.method, 'PUT');
      assert.equal(echo.url, '/orders/7?a=1&b=two');
      assert.equal(echo.body, 'the order');
      assert.equal(echo.headers['x-test'], 'kept');
      assert.equal(echo.headers['x-call-id'], callId);
    });

    it('refuses what it cannot queue: 404, 413, 400; status of an unknown call is 404', async () => {
      const unknown = await submit(`nobody-${randomUUID().slice(0, 6)}`);
      assert.equal(unknown.status, 404);
      const big = await submit(fn, { body: 'x'.repeat(1001) });
      assert.equal(big.status, 413);
      const badCallback = await submit(fn, { headers: { 'X-Callback-Url': 'ftp://nowhere' } });
      assert.equal(badCallback.status, 400);
      assert.match(badCallback.text, /X-Callback-Url/);
      assert.equal((await request(`${url}/system/calls/${randomUUID()}`)).status, 404);
    });

    it('queues a call once per Idempotency-Key', async () => {
      const key = randomUUID();
      const headers = { 'Idempotency-Key': key, 'X-Callback-Url': `${callbacks.url}/once` };
      const first = callIdOf(await submit(fn, { headers }));
      const again = callIdOf(await submit(fn, { headers }));
      assert.equal(again, first);
      await settled(first);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(callbacks.to('/once').length, 1, 'the function ran once');
      // Another body with the same key and function: refused, nothing queued.
      const reused = await submit(fn, { headers, body: 'another body' });
      assert.equal(reused.status, 422, reused.text);
      assert.match(reused.text, /Idempotency-Key/);
      const otherPath = await submit(`${fn}/elsewhere`, { headers });
      assert.equal(otherPath.status, 422);
      // The same key to another function is that function's own key.
      const elsewhere = callIdOf(await submit(limited, { headers: { 'Idempotency-Key': key } }));
      assert.notEqual(elsewhere, first);
      await settled(elsewhere);
    });

    it('retries retryable statuses with growing waits, and honours Retry-After', async () => {
      const key = randomUUID();
      const flaky = callIdOf(await submit(`${fn}/flaky?key=${key}&fail=2`));
      const record = await settled(flaky);
      assert.equal(record.state, 'succeeded');
      assert.deepEqual(
        record.attempts.map((a) => a.status),
        [503, 503, 200],
      );
      const starts = record.attempts.map((a) => Date.parse(a.startedAt));
      const gaps = starts.slice(1).map((at, i) => at - starts[i]!);
      // Equal jitter: retry n waits between half and all of min(400, 100 * 2^(n-1)) ms, plus the
      // backend's delivery time (kept loose above: a loaded CI machine is slow to deliver).
      assert.ok(gaps[0]! >= 50 && gaps[0]! <= 700, `first wait ${gaps[0]}ms`);
      assert.ok(gaps[1]! >= 100 && gaps[1]! <= 900, `second wait ${gaps[1]}ms`);

      const waiter = callIdOf(await submit(`${fn}/retry-after?key=${randomUUID()}&fail=1&s=1`));
      const waited = await settled(waiter);
      assert.deepEqual(
        waited.attempts.map((a) => a.status),
        [429, 200],
      );
      const gap =
        Date.parse(waited.attempts[1]!.startedAt) - Date.parse(waited.attempts[0]!.startedAt);
      assert.ok(gap >= 950, `Retry-After: 1 honoured, waited ${gap}ms`);
    });

    it('slows a function down after a 429: its next call waits out the Retry-After', async () => {
      const key = randomUUID();
      const first = callIdOf(await submit(`${fn}/retry-after?key=${key}&fail=1&s=1`));
      const answered = await waitFor(
        async () => {
          const record = JSON.parse(
            (await request(`${url}/system/calls/${first}`)).text,
          ) as CallRecord;
          return record.attempts.length >= 1 && record.attempts[0];
        },
        { what: 'the first answer, a 429' },
      );
      const next = callIdOf(await submit(`${fn}/status/200`));
      const record = await settled(next);
      const pausedUntil = Date.parse(answered.startedAt) + answered.durationMs + 1000;
      assert.ok(
        Date.parse(record.attempts[0]!.startedAt) >= pausedUntil - 100,
        'the function was paused for its Retry-After',
      );
      await settled(first);
    });

    it('does not retry other statuses: the call fails at once, and the callback says so', async () => {
      const callId = callIdOf(
        await submit(`${fn}/status/400`, { headers: { 'X-Callback-Url': `${callbacks.url}/400` } }),
      );
      const record = await settled(callId);
      assert.equal(record.state, 'failed');
      assert.equal(record.attempts.length, 1);
      assert.equal(record.lastStatus, 400);
      const [callback] = await waitFor(
        () => callbacks.to('/400').length === 1 && callbacks.to('/400'),
        {
          what: 'the callback',
        },
      );
      assert.equal(callback?.headers['x-function-status'], '400');
    });

    it('dead-letters after the last attempt, keeps it whole, redrives and purges it', async () => {
      const key = randomUUID();
      const callId = callIdOf(
        await submit(`${fn}/flaky?key=${key}&fail=4`, {
          headers: { 'X-Callback-Url': `${callbacks.url}/dead` },
        }),
      );
      const record = await settled(callId);
      assert.equal(record.state, 'dead-lettered');
      assert.equal(record.attempts.length, 3);
      assert.match(record.reason ?? '', /gave up after 3 attempts/);
      const [callback] = await waitFor(
        () => callbacks.to('/dead').length === 1 && callbacks.to('/dead'),
        {
          what: 'the callback of the last attempt',
        },
      );
      assert.equal(callback?.headers['x-function-status'], '503');
      assert.equal(callback?.headers['x-retry'], callback?.headers['x-retry-max']);

      const listed = JSON.parse(
        (await request(`${url}/system/dead-letters?function=${fn}`)).text,
      ) as DeadLetterPage;
      const summary = listed.items.find((l) => l.callId === callId);
      assert.ok(summary, 'listed');
      assert.equal(summary.lastStatus, 503);
      assert.equal(summary.lastBodyExcerpt, 'failure 3');
      assert.equal(summary.request.Path, '/flaky');
      assert.equal(summary.request.BodyBytes, 1);
      const whole = await request(`${url}/system/dead-letters/${callId}`);
      assert.equal(whole.status, 200);
      const letter = JSON.parse(whole.text) as DeadLetter;
      assert.equal(Buffer.from(letter.request.Body, 'base64').toString(), 'x');

      const vague = await request(`${url}/system/dead-letters/redrive`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
      });
      assert.equal(vague.status, 400, 'redrive says which');
      const redrive = await request(`${url}/system/dead-letters/redrive`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ callId }),
      });
      assert.equal(redrive.status, 202);
      assert.deepEqual((JSON.parse(redrive.text) as { callIds: string[] }).callIds, [callId]);
      // Round two: one more failure (the fourth), then success.
      const again = await waitFor(
        async () => {
          const got = JSON.parse(
            (await request(`${url}/system/calls/${callId}`)).text,
          ) as CallRecord;
          return got.state === 'succeeded' && got;
        },
        { timeoutMs: 10_000, what: 'the redriven call to succeed' },
      );
      assert.deepEqual(
        again.attempts.map((a) => a.status),
        [503, 503, 503, 503, 200],
      );

      const doomed = callIdOf(await submit(`${fn}/flaky?key=${randomUUID()}&fail=9`));
      await settled(doomed);
      const purge = await request(`${url}/system/dead-letters`, {
        method: 'DELETE',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ callId: doomed }),
      });
      assert.deepEqual(JSON.parse(purge.text), { purged: 1 });
      assert.equal((await request(`${url}/system/dead-letters/${doomed}`)).status, 404);
    });

    it('stores a dead letter made elsewhere (a connector’s), which a redrive runs as an async call', async () => {
      const post = (body: unknown) =>
        request(`${url}/system/dead-letters`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
        });
      const bad = await post({ function: fn, attempts: [{ attempt: 0 }], reason: 'x' });
      assert.equal(bad.status, 400);
      assert.match(bad.text, /attempts/);
      assert.equal(
        (await post({ function: fn, attempts: [], reason: 'x', body: '%%' })).status,
        400,
      );

      const key = randomUUID();
      const stored = await post({
        function: fn,
        method: 'PUT',
        path: '/flaky',
        query: `key=${key}&fail=0`,
        headers: { 'X-Topic': 'orders', 'Content-Type': 'text/plain' },
        body: Buffer.from('from a connector').toString('base64'),
        attempts: [{ attempt: 1, startedAt: new Date().toISOString(), durationMs: 3, status: 503 }],
        lastStatus: 503,
        lastBodyExcerpt: 'busy',
        reason: 'not delivered: 503 after 1 attempts',
      });
      assert.equal(stored.status, 201, stored.text);
      const { callId } = JSON.parse(stored.text) as { callId: string };
      const letter = JSON.parse(
        (await request(`${url}/system/dead-letters/${callId}`)).text,
      ) as DeadLetter;
      assert.equal(letter.function, fn);
      assert.equal(letter.request.Method, 'PUT');
      assert.deepEqual(letter.request.Header['X-Topic'], ['orders']);
      assert.equal(letter.reason, 'not delivered: 503 after 1 attempts');

      const named = await post({
        function: fn,
        headers: { 'x-call-id': `sent-${key}` },
        attempts: [],
        reason: 'x',
      });
      assert.deepEqual(JSON.parse(named.text), { callId: `sent-${key}` });
      const kept = JSON.parse(
        (await request(`${url}/system/dead-letters/sent-${key}`)).text,
      ) as DeadLetter;
      assert.deepEqual(kept.request.Header, { 'X-Call-Id': [`sent-${key}`] }, 'one X-Call-Id');

      const redrive = await request(`${url}/system/dead-letters/redrive`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ callId }),
      });
      assert.equal(redrive.status, 202);
      const done = await settled(callId);
      assert.equal(done.state, 'succeeded');
      assert.deepEqual(
        done.attempts.map((a) => a.status),
        [503, 200],
      );
    });

    it('pages many large dead letters: bounded answers and memory; a letter’s body on its own', async () => {
      // The issue's case at a test's scale: 450 letters of 1 MiB answered 500 and took 3 GB.
      const count = 60;
      const letterBytes = subject.letterBytes ?? 1024 * 1024;
      const many = `many-${randomUUID().slice(0, 8)}`;
      const body = Buffer.alloc(letterBytes, 'a');
      body.write('the start', 0);
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        ids.push(
          await queue.bury({
            request: {
              Header: { 'X-Call-Id': [randomUUID()], 'Content-Type': ['text/plain'] },
              Host: 'gateway',
              Body: body.toString('base64'),
              Method: 'POST',
              Path: '',
              QueryString: `n=${i}`,
              Function: many,
            },
            attempts: [],
            reason: 'too big to care',
          }),
        );
      }
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      let most = 0;
      do {
        const query = `function=${many}&limit=25${cursor ? `&cursor=${cursor}` : ''}`;
        const { result: res, growth } = await peakGrowth(() =>
          request(`${url}/system/dead-letters?${query}`),
        );
        assert.equal(res.status, 200, res.text);
        assert.ok(res.body.length < 256 * 1024, `a page of ${res.body.length} bytes`);
        most = Math.max(most, growth);
        const page = JSON.parse(res.text) as DeadLetterPage;
        assert.ok(page.items.length <= 25);
        for (const item of page.items) {
          assert.equal(item.request.BodyBytes, letterBytes);
          assert.equal('Body' in item.request, false);
        }
        seen.push(...page.items.map((item) => item.callId));
        cursor = page.next;
        pages += 1;
        assert.ok(pages <= count, 'the pages end');
      } while (cursor !== undefined);
      assert.deepEqual(seen, ids);
      // Reading every letter at once would take more than all of them (60 MiB and up).
      assert.ok(most < 48 * 1024 * 1024, `a page grew the heap by ${most} bytes`);

      const raw = await request(`${url}/system/dead-letters/${ids[7]}/body`);
      assert.equal(raw.status, 200);
      assert.equal(raw.headers['content-type'], 'text/plain');
      assert.ok(raw.body.equals(body), 'the body, byte for byte');
      const whole = JSON.parse(
        (await request(`${url}/system/dead-letters/${ids[7]}`)).text,
      ) as DeadLetter;
      assert.equal(whole.request.QueryString, 'n=7');
      assert.equal((await request(`${url}/system/dead-letters/${randomUUID()}/body`)).status, 404);
      for (const bad of ['limit=0', 'limit=1001', 'limit=x', 'cursor=nonsense', 'other=1']) {
        const res = await request(`${url}/system/dead-letters?${bad}`);
        assert.equal(res.status, 400, `${bad}: ${res.text}`);
      }
      const purge = await request(`${url}/system/dead-letters`, {
        method: 'DELETE',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ function: many }),
      });
      assert.deepEqual(JSON.parse(purge.text), { purged: count });
    });

    it('answers 429 with Retry-After when the queue holds max_queued_calls, queuing nothing', async () => {
      const capped = await subject.open({ maxQueuedCalls: 1 });
      const full = buildGateway({
        provider,
        config: readConfig({ basic_auth: 'false' }),
        queue: capped,
        registry: new Registry(),
      });
      try {
        await full.listen({ port: 0, host: '127.0.0.1' });
        const at = `http://127.0.0.1:${(full.server.address() as AddressInfo).port}`;
        const first = await request(`${at}/async-function/${fn}`, { method: 'POST', body: 'x' });
        assert.equal(first.status, 202);
        const sentId = randomUUID();
        const refused = await request(`${at}/async-function/${fn}`, {
          method: 'POST',
          body: 'x',
          headers: { 'X-Call-Id': sentId },
        });
        assert.equal(refused.status, 429, refused.text);
        assert.equal(refused.headers['retry-after'], '1');
        assert.match(refused.text, /max_queued_calls/);
        assert.equal((await request(`${at}/system/calls/${sentId}`)).status, 404, 'not queued');
      } finally {
        await full.close();
        await capped.close();
      }
    });

    it('retries a callback that fails, and does not follow a redirect', async () => {
      callbacks.answer('/flaky-receiver', 500);
      const callId = callIdOf(
        await submit(fn, { headers: { 'X-Callback-Url': `${callbacks.url}/flaky-receiver` } }),
      );
      await waitFor(() => callbacks.to('/flaky-receiver').length === 2, {
        what: 'the callback to be tried again',
      });
      const [first, second] = callbacks.to('/flaky-receiver');
      assert.equal(second?.headers['x-call-id'], callId);
      assert.equal(second?.body, first?.body);
      // callback_retry_wait (100 ms) with equal jitter: half of it at least.
      assert.ok(second.at - first!.at >= 45, 'after a wait');

      callbacks.answer('/moved', 302);
      await settled(
        callIdOf(await submit(fn, { headers: { 'X-Callback-Url': `${callbacks.url}/moved` } })),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(callbacks.to('/moved').length, 1);
      assert.equal(callbacks.to('/elsewhere').length, 0, 'the redirect was not followed');
    });

    it('cancels a waiting call (202), not a running one (409); an unknown one is 404', async () => {
      // `limited` runs one call at a time: the second waits behind the first.
      const running = callIdOf(await submit(`${limited}/concurrency?ms=800`));
      await waitFor(
        async () =>
          (JSON.parse((await request(`${url}/system/calls/${running}`)).text) as CallRecord)
            .state === 'running',
        { what: 'the first call to run' },
      );
      const waiting = callIdOf(await submit(`${limited}/concurrency?ms=10`));
      // While its function is at its limit, a waiting call is handed to the worker and put back
      // now and then; caught in that instant it answers 409 for a moment.
      const cancel = await waitFor(
        async () => {
          const res = await request(`${url}/system/calls/${waiting}`, { method: 'DELETE' });
          return res.status !== 409 && res;
        },
        { what: 'the waiting call to be cancelled' },
      );
      assert.equal(cancel.status, 202);
      const busy = await request(`${url}/system/calls/${running}`, { method: 'DELETE' });
      assert.equal(busy.status, 409);
      assert.equal((await settled(running)).state, 'succeeded');
      assert.equal((await settled(waiting)).state, 'cancelled');
      const unknown = await request(`${url}/system/calls/${randomUUID()}`, { method: 'DELETE' });
      assert.equal(unknown.status, 404);
    });

    it('holds a function to its fnbus.queue.max_inflight, while others keep going', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        ids.push(
          callIdOf(
            await submit(`${limited}/concurrency?ms=100`, {
              headers: { 'X-Callback-Url': `${callbacks.url}/limited` },
            }),
          ),
        );
      }
      const quick = callIdOf(await submit(fn));
      const quickDone = await settled(quick);
      assert.equal(quickDone.state, 'succeeded');
      for (const id of ids) await settled(id);
      const lastDone = Math.max(...callbacks.to('/limited').map((r) => r.at));
      assert.ok(Date.parse(quickDone.updatedAt) < lastDone, 'another function was not held up');
      const most = Math.max(...callbacks.to('/limited').map((r) => Number(r.body)));
      assert.equal(most, 1, 'one at a time');
    });

    it('reports queue depth, outcomes and dead letters in /metrics', async () => {
      const text = (await request(`${url}/metrics`)).text;
      assert.match(
        text,
        new RegExp(
          `queue_worker_messages_processed_total\\{function_name="${fn}",outcome="success"\\} \\d+`,
        ),
      );
      assert.match(text, new RegExp(`queue_worker_retries_total\\{function_name="${fn}"\\} \\d+`));
      assert.match(
        text,
        new RegExp(`queue_worker_dead_letters_total\\{function_name="${fn}"\\} \\d+`),
      );
      assert.match(text, /# TYPE queue_worker_pending_messages gauge/);
      assert.match(text, /# TYPE queue_worker_oldest_pending_seconds gauge/);
      assert.match(text, /gateway_function_invocation_total/);
    });
  });
}
