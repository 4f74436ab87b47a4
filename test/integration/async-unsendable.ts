import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { CallRecord, Queue } from '../../core/queue.js';
import type { QueueRequest } from '../../core/queue-types.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { GatewayInvoker } from '../../client/gateway-invoker.js';
import { QueueWorker, type WorkerOptions } from '../../queue/worker.js';
import { request, type HttpResult } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, fprocess, makeTempDir } from '../helpers/watchdog.js';
import type { AsyncPathSubject } from './async-path.js';

/** How many bad calls each test sends: past undici's 128 pool slots, many times over a small pool. */
const badCalls = 200;

const finalStates = ['succeeded', 'failed', 'dead-lettered', 'cancelled'];

/**
 * Calls the worker cannot (or, before fnbus kept paths raw, could not) replay: none of them may
 * stop the async path. Each backend runs these with a worker over a real gateway and function.
 */
export function unsendableCallsSuite(
  name: string,
  makeSubject: () => Promise<AsyncPathSubject>,
): void {
  describe(`calls that cannot be replayed, on ${name}`, () => {
    let subject: AsyncPathSubject;
    let queue: Queue;
    let provider: ProcessProvider;
    let gateway: ReturnType<typeof buildGateway>;
    let url: string;
    const fn = `echo-${randomUUID().slice(0, 8)}`;
    let worker: { stop: AbortController; done: Promise<void>; invoker: GatewayInvoker };

    const startWorker = (options: Partial<WorkerOptions> = {}, connections?: number) => {
      const invoker = new GatewayInvoker({
        gatewayUrl: url,
        timeoutMs: 10_000,
        ...(connections ? { connections } : {}),
      });
      const stop = new AbortController();
      const done = new QueueWorker({
        queue,
        invoker,
        maxInflight: 8,
        retry: {
          maxAttempts: 3,
          retryCodes: new Set([429, 500, 502, 503, 504]),
          minWaitMs: 50,
          maxWaitMs: 100,
        },
        maxAgeMs: 0,
        callback: { attempts: 1, firstWaitMs: 10, timeoutMs: 1000 },
        ...options,
      }).run(stop.signal);
      return { stop, done, invoker };
    };
    const stopWorker = async () => {
      worker.stop.abort();
      await worker.done;
      await worker.invoker.close();
    };
    const submit = (path: string, options: Parameters<typeof request>[1] = {}) =>
      request(`${url}/async-function/${path}`, { method: 'POST', body: 'x', ...options });
    const callIdOf = (res: HttpResult) => {
      assert.equal(res.status, 202, res.text);
      return String(res.headers['x-call-id']);
    };
    const record = async (callId: string) =>
      JSON.parse((await request(`${url}/system/calls/${callId}`)).text) as CallRecord;
    const settled = (callId: string, timeoutMs = 10_000) =>
      waitFor(
        async () => {
          const got = await record(callId);
          return finalStates.includes(got.state) && got;
        },
        { timeoutMs, what: `call ${callId} to be over` },
      );
    /** A good call, from submit to done: it must not wait behind the bad ones. */
    const goodCallMs = async () => {
      const startedAt = Date.now();
      const done = await settled(callIdOf(await submit(`${fn}/good?ms=0`)), 5000);
      assert.equal(done.state, 'succeeded');
      return Date.now() - startedAt;
    };
    /** Messages as fnbus stored them before it kept paths raw, or as another writer might. */
    const stored = (overrides: Partial<QueueRequest>): QueueRequest => ({
      Header: { 'X-Call-Id': [randomUUID()], 'Content-Type': ['text/plain'] },
      Host: 'gateway.local',
      Body: Buffer.from('x').toString('base64'),
      Method: 'POST',
      Path: '',
      QueryString: '',
      Function: fn,
      ...overrides,
    });
    const postLetter = (body: unknown) =>
      request(`${url}/system/dead-letters`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });

    before(async () => {
      subject = await makeSubject();
      queue = await subject.open();
      provider = new ProcessProvider({ stateDir: makeTempDir('fnbus-unsendable-') });
      await provider.start();
      gateway = buildGateway({
        provider,
        config: readConfig({ basic_auth: 'false' }),
        queue,
      });
      await gateway.listen({ port: 0, host: '127.0.0.1' });
      url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
      worker = startWorker();
      await provider.deploy({
        service: fn,
        image: 'fnbus/node-http-server',
        envProcess: fprocess('node', fixture('node-http-server.cjs')),
        envVars: { mode: 'http', write_timeout: '20s' },
      });
      await waitFor(async () => (await provider.get(fn))?.availableReplicas === 1, {
        timeoutMs: 15_000,
        what: `${fn} to be ready`,
      });
    });
    after(async () => {
      await stopWorker();
      await gateway.close();
      await queue.close();
      await provider.close();
      await subject.close();
    });

    it(`replays an encoded path raw (a%20b, a%3Fb); ${badCalls} of them leave the worker going`, async (t) => {
      const ids: string[] = [];
      for (let i = 0; i < badCalls; i++) ids.push(callIdOf(await submit(`${fn}/a%20b%3Fc?n=${i}`)));
      for (const id of ids) assert.equal((await settled(id, 20_000)).state, 'succeeded');
      const took = await goodCallMs();
      t.diagnostic(`a good call after ${badCalls} encoded paths: ${took} ms`);

      const letter = callIdOf(await submit(`${fn}/flaky?key=${randomUUID()}&fail=9`));
      assert.equal((await settled(letter)).state, 'dead-lettered');
      const kept = await queue.deadLetter(letter);
      assert.equal(kept?.request.FunctionTimeoutMs, 20_000, "the function's own timeout");

      // What the function got: the path as sent, its %3F still in the path, not the query.
      const answers: string[] = [];
      const receiver = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          answers.push(Buffer.concat(chunks).toString());
          res.end();
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      t.after(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
      const port = (receiver.address() as AddressInfo).port;
      const echoed = callIdOf(
        await submit(`${fn}/a%20b%3Fc/%2F?q=1`, {
          headers: { 'X-Callback-Url': `http://127.0.0.1:${port}/cb` },
        }),
      );
      assert.equal((await settled(echoed)).state, 'succeeded');
      const [answer] = await waitFor(() => answers.length === 1 && answers, {
        what: 'the callback',
      });
      assert.equal((JSON.parse(answer ?? '{}') as { url: string }).url, '/a%20b%3Fc/%2F?q=1');
    });

    it('refuses at the door a path it could not decode or replay (400, naming it)', async () => {
      const res = await submit(`${fn}/a%zz`);
      assert.equal(res.status, 400);
      assert.match(res.text, /a%zz/);
    });

    it(`dead-letters at once, unsent, ${badCalls} stored calls no request can carry`, async (t) => {
      const bad: QueueRequest[] = [];
      for (let i = 0; i < badCalls; i++) {
        bad.push(
          stored(
            i % 4 === 0
              ? { Path: '/a b' } // decoded, as fnbus stored it before
              : i % 4 === 1
                ? { Header: { 'X-Call-Id': [randomUUID()], 'X-Bad': ['a\r\nInjected: 1'] } }
                : i % 4 === 2
                  ? { Header: { 'X-Call-Id': [randomUUID()], 'Bad Name': ['x'] } }
                  : { Method: 'GE T', QueryString: 'a b' },
          ),
        );
      }
      const ids = await Promise.all(bad.map(async (req) => (await queue.enqueue(req)).callId));
      for (const id of ids) {
        const done = await settled(id, 20_000);
        assert.equal(done.state, 'dead-lettered');
        assert.equal(done.attempts.length, 0, 'never tried');
        assert.match(done.reason ?? '', /cannot be sent/);
      }
      const reasons = await Promise.all(
        ids.slice(0, 4).map(async (id) => (await record(id)).reason),
      );
      assert.match(reasons[0] ?? '', /path "\/a b"/);
      assert.match(reasons[1] ?? '', /header X-Bad/);
      assert.match(reasons[2] ?? '', /header name "Bad Name"/);
      assert.match(reasons[3] ?? '', /method "GE T".*query "a b"/);
      const took = await goodCallMs();
      t.diagnostic(`a good call after ${badCalls} unsendable calls: ${took} ms`);
    });

    it('refuses a posted dead letter it could not replay (400, naming it); redrives a stored one to a dead letter again at once', async () => {
      const letter = { function: fn, attempts: [], reason: 'x' };
      const crlf = await postLetter({ ...letter, headers: { 'X-Bad': 'a\r\nInjected: 1' } });
      assert.equal(crlf.status, 400);
      assert.match(crlf.text, /header X-Bad/);
      const name = await postLetter({ ...letter, headers: { 'Bad Name': 'x' } });
      assert.equal(name.status, 400);
      assert.match(name.text, /header name "Bad Name"/);
      const path = await postLetter({ ...letter, path: '/a b' });
      assert.equal(path.status, 400);
      assert.match(path.text, /path "\/a b"/);
      const many = await postLetter({ ...letter, headers: { 'X-Ok': ['one', 'two\n'] } });
      assert.equal(many.status, 400);
      const fine = await postLetter({ ...letter, path: '/a%20b', headers: { 'X-Ok': 'ok' } });
      assert.equal(fine.status, 201, fine.text);

      // Stored before fnbus checked letters: a redrive gives it up again at once, with why.
      const callId = await queue.bury({
        request: stored({ Path: '/a b', Header: { 'X-Call-Id': [randomUUID()] } }),
        attempts: [],
        reason: 'failed elsewhere',
      });
      const redrive = await request(`${url}/system/dead-letters/redrive`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ callId }),
      });
      assert.equal(redrive.status, 202);
      const again = await waitFor(
        async () => {
          const got = await record(callId);
          return got.state === 'dead-lettered' && /cannot be sent/.test(got.reason ?? '') && got;
        },
        { timeoutMs: 10_000, what: 'the redriven letter to be given up again' },
      );
      assert.equal(again.attempts.length, 0);
      const kept = await queue.deadLetter(callId);
      assert.equal(kept?.request.Path, '/a b', 'kept as it was, for an operator to see');
      await goodCallMs();
    });

    it(`keeps going across a worker restart, with a small pool and calls past their deadline`, async (t) => {
      await stopWorker();
      // Queued while no worker runs: what a restarted worker finds first.
      const bad = await Promise.all(
        Array.from(
          { length: badCalls },
          async () => (await queue.enqueue(stored({ Path: '/a b' }))).callId,
        ),
      );
      const encoded: string[] = [];
      for (let i = 0; i < 20; i++) encoded.push(callIdOf(await submit(`${fn}/a%20b?n=${i}`)));
      // Four connections, and calls that hang past a 500 ms deadline.
      worker = startWorker({ callTimeoutMs: 500 }, 4);
      const hung: string[] = [];
      for (let i = 0; i < 8; i++) hung.push(callIdOf(await submit(`${fn}/hang?ms=5000`)));
      for (const id of bad) assert.equal((await settled(id, 20_000)).state, 'dead-lettered');
      for (const id of encoded) assert.equal((await settled(id, 20_000)).state, 'succeeded');
      const took = await goodCallMs();
      for (const id of hung) {
        const done = await settled(id, 20_000);
        assert.equal(done.state, 'dead-lettered');
        assert.match(done.attempts[0]?.error ?? '', /no answer within the deadline \(500 ms\)/);
      }
      const after = await goodCallMs();
      t.diagnostic(
        `after a restart: a good call in ${took} ms, then ${after} ms after 8 hung calls`,
      );
    });
  });
}
