import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { GatewayInvoker } from '../../client/gateway-invoker.js';
import { ValidationError } from '../../core/errors.js';
import { postCallback } from '../../queue/callback.js';
import { readWorkerConfig } from '../../queue/config.js';
import { attemptDeadlineMs } from '../../queue/worker.js';

/**
 * A server standing in for a gateway or a callback receiver: `/drip` sends its headers, then a
 * byte every 20 ms and never ends (each byte resets undici's own body timeout); `/hang` never
 * answers; anything else
 * answers 200 at once. Counts the requests it got.
 */
class DripServer {
  readonly #server: Server;
  readonly #timers = new Set<NodeJS.Timeout>();
  requests = 0;
  url = '';

  constructor() {
    this.#server = createServer((req, res) => {
      this.requests += 1;
      req.resume();
      if (req.url?.endsWith('/hang')) return; // never answers
      if (req.url?.endsWith('/drip')) {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        const timer = setInterval(() => res.write('.'), 20);
        this.#timers.add(timer);
        res.once('close', () => {
          clearInterval(timer);
          this.#timers.delete(timer);
        });
        return;
      }
      res.end('ok');
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

const call = (path: string, headers: Record<string, string | string[]> = {}) => ({
  method: 'POST',
  path,
  query: '',
  headers,
  body: Buffer.from('x'),
});

describe('deadlines and pool slots of the worker’s calls', () => {
  const server = new DripServer();
  before(() => server.start());
  after(() => server.close());

  it(
    'refuses, unsent, 200 calls no request can carry, and a 1-connection pool still serves',
    {
      timeout: 10_000,
    },
    async () => {
      const invoker = new GatewayInvoker({ gatewayUrl: server.url, timeoutMs: 0, connections: 1 });
      const sent = server.requests;
      for (let i = 0; i < 200; i++) {
        const bad = [
          call('/a b'),
          call('/', { 'X-Bad': 'a\r\nb' }),
          call('/', { 'Bad Name': 'x' }),
        ];
        await assert.rejects(invoker.invoke('fn', bad[i % 3]!), ValidationError);
      }
      assert.equal(server.requests, sent, 'nothing was sent');
      const good = await invoker.invoke('fn', call('/a%20b'), { timeoutMs: 2000 });
      assert.equal(good.status, 200);
      await invoker.close();
    },
  );

  it(
    'aborts a call at its deadline wherever it is, and the connection comes back',
    {
      timeout: 10_000,
    },
    async () => {
      const invoker = new GatewayInvoker({ gatewayUrl: server.url, timeoutMs: 0, connections: 1 });
      for (let i = 0; i < 3; i++) {
        const startedAt = Date.now();
        await assert.rejects(invoker.invoke('fn', call('/drip'), { timeoutMs: 200 }));
        assert.ok(Date.now() - startedAt < 1500, 'ended at its deadline');
      }
      const good = await invoker.invoke('fn', call('/'), { signal: AbortSignal.timeout(2000) });
      assert.equal(good.status, 200);
      await invoker.close();

      // Its own timeout is a deadline for the whole answer, not per chunk.
      const bounded = new GatewayInvoker({ gatewayUrl: server.url, timeoutMs: 200 });
      await assert.rejects(bounded.invoke('fn', call('/drip')));
      await bounded.close();
    },
  );

  it('gives a callback try a deadline for the whole answer', { timeout: 10_000 }, async () => {
    const options = { attempts: 2, firstWaitMs: 10, timeoutMs: 200 };
    let startedAt = Date.now();
    const dripped = await postCallback(`${server.url}/drip`, Buffer.from('x'), {}, options);
    assert.equal(dripped.delivered, true, 'answered 200, its endless body cut at the deadline');
    assert.ok(Date.now() - startedAt < 1500, `over in ${Date.now() - startedAt} ms`);
    startedAt = Date.now();
    const hung = await postCallback(`${server.url}/hang`, Buffer.from('x'), {}, options);
    assert.deepEqual(hung, { delivered: false, tries: 2, last: 'no answer within 200 ms' });
    assert.ok(Date.now() - startedAt < 3000, `over in ${Date.now() - startedAt} ms`);
    const bad = await postCallback(
      `${server.url}/`,
      Buffer.from('x'),
      { 'X-Bad': 'a\nb' },
      options,
    );
    assert.equal(bad.delivered, false);
    assert.equal(bad.tries, 0);
    assert.match(bad.last, /cannot be sent: header X-Bad/);
  });

  it('gives each attempt call_timeout, else the function’s own timeout and time to start', () => {
    assert.equal(readWorkerConfig({}).callTimeoutMs, 0);
    assert.equal(readWorkerConfig({ call_timeout: '2m' }).callTimeoutMs, 120_000);
    assert.equal(attemptDeadlineMs({ FunctionTimeoutMs: 10_000 }, { callTimeoutMs: 5000 }), 5000);
    assert.equal(attemptDeadlineMs({ FunctionTimeoutMs: 10_000 }, { callTimeoutMs: 0 }), 40_000);
    assert.equal(attemptDeadlineMs({}, { upstreamTimeoutMs: 60_000 }), 90_000);
  });
});
