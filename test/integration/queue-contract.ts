import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  ConflictError,
  IdempotencyKeyReusedError,
  NotFoundError,
  QueueFullError,
  ValidationError,
} from '../../core/errors.js';
import type {
  AttemptOutcome,
  DeadLetterQuery,
  DeadLetterSummary,
  Delivery,
  DeliveryHandler,
  Enqueued,
  Queue,
  Settlement,
} from '../../core/queue.js';
import type { QueueRequest } from '../../core/queue-types.js';
import { waitFor } from '../helpers/wait.js';

/** What a test may ask of the queues it opens. */
export interface QueueOpenOptions {
  maxQueuedCalls?: number;
}

/** One backend under test. */
export interface QueueSubject {
  /**
   * A queue on the subject's backend and queue name: every call during one test reaches the same
   * messages, as the workers of one deployment do.
   */
  open(options?: QueueOpenOptions): Promise<Queue>;
  /**
   * Ends `queue` as a killed process would: nothing settled, nothing flushed. The subject makes
   * unsettled deliveries come back within `redeliveryTimeoutMs`.
   */
  abandon(queue: Queue): Promise<void>;
  /** Stops whatever the subject started; queues opened are closed first by the suite. */
  close(): Promise<void>;
}

export interface QueueContractOptions {
  /** How long an abandoned delivery takes to come back; default 10s. */
  redeliveryTimeoutMs?: number;
}

/** A function name no other test uses. */
function randomFunction(): string {
  return `fn-${randomBytes(4).toString('hex')}`;
}

/** An async request as the gateway records it. */
export function queueRequest(fn: string, overrides: Partial<QueueRequest> = {}): QueueRequest {
  return {
    Header: {
      'X-Call-Id': [randomUUID()],
      'Content-Type': ['text/plain'],
      'X-Many': ['one', 'two'],
    },
    Host: 'gateway.local:8080',
    Body: Buffer.from('the body').toString('base64'),
    Method: 'PUT',
    Path: '/orders/1',
    QueryString: 'a=1&b=two',
    Function: fn,
    CallbackUrl: 'http://127.0.0.1:1/callback',
    ...overrides,
  };
}

/** The outcome of an attempt that got `status`. */
function attempt(delivery: Delivery, status: number, body = ''): AttemptOutcome {
  return {
    record: {
      attempt: delivery.attempts.length + 1,
      startedAt: new Date().toISOString(),
      durationMs: 1,
      status,
    },
    bodyExcerpt: body,
  };
}

const ack = (delivery: Delivery, status = 200): Settlement => ({
  outcome: 'ack',
  attempt: attempt(delivery, status),
});

/**
 * The queue contract (core/queue.ts): the local, BullMQ and JetStream queues run these same
 * tests. `makeSubject` is called once per test.
 */
export function queueContract(
  name: string,
  makeSubject: () => Promise<QueueSubject>,
  { redeliveryTimeoutMs = 10_000 }: QueueContractOptions = {},
): void {
  describe(`Queue contract: ${name}`, () => {
    let subject: QueueSubject;
    let queue: Queue;
    const opened: Queue[] = [];
    const consumers: { stop: AbortController; done: Promise<void> }[] = [];

    const open = async (options?: QueueOpenOptions) => {
      const made = await subject.open(options);
      opened.push(made);
      return made;
    };
    /** Consumes with `handle` until the test ends. */
    const consume = (handle: DeliveryHandler, concurrency = 4, on: Queue = queue) => {
      const stop = new AbortController();
      const done = on.consume(handle, { concurrency }, stop.signal);
      consumers.push({ stop, done });
      return { stop, done };
    };

    beforeEach(async () => {
      subject = await makeSubject();
      queue = await open();
    });
    afterEach(async () => {
      for (const consumer of consumers.splice(0)) consumer.stop.abort();
      await Promise.all(consumers.map((consumer) => consumer.done));
      for (const made of opened.splice(0)) await made.close().catch(() => {});
      await subject.close();
    });

    it('delivers what was enqueued, whole, under its X-Call-Id, and records the outcome', async () => {
      const fn = randomFunction();
      const req = queueRequest(fn);
      const { callId, duplicate } = await queue.enqueue(req);
      assert.equal(callId, req.Header['X-Call-Id']?.[0]);
      assert.equal(duplicate, false);
      const queued = await queue.status(callId);
      assert.equal(queued?.state, 'queued');
      assert.equal(queued?.function, fn);
      assert.deepEqual(queued?.attempts, []);

      const seen: { req: QueueRequest; delivery: Delivery; stateMeanwhile?: string }[] = [];
      consume(async (got, delivery) => {
        seen.push({ req: got, delivery, stateMeanwhile: (await queue.status(callId))?.state });
        return ack(delivery, 200);
      });
      const done = await waitFor(
        async () => {
          const record = await queue.status(callId);
          return record?.state === 'succeeded' && record;
        },
        { what: 'the call to succeed' },
      );
      assert.equal(seen.length, 1);
      assert.deepEqual(seen[0]?.req, req);
      assert.equal(seen[0]?.delivery.callId, callId);
      assert.equal(seen[0]?.delivery.redelivered, false);
      assert.equal(seen[0]?.delivery.priorAttempts, 0);
      assert.equal(seen[0]?.stateMeanwhile, 'running');
      assert.equal(done.attempts.length, 1);
      assert.equal(done.attempts[0]?.status, 200);
      assert.equal(done.lastStatus, 200);
    });

    it('makes a call id when the request has no X-Call-Id, and refuses a taken one', async () => {
      const fn = randomFunction();
      const { callId } = await queue.enqueue(queueRequest(fn, { Header: {} }));
      assert.match(callId, /^[0-9a-f-]{36}$/);
      assert.equal((await queue.status(callId))?.state, 'queued');
      const req = queueRequest(fn);
      await queue.enqueue(req);
      await assert.rejects(queue.enqueue(req), ConflictError);
      assert.equal(await queue.status(randomUUID()), undefined);
    });

    it('runs a call whose id the caller minted (freshCallId) like any other', async () => {
      const req = queueRequest(randomFunction());
      const { callId, duplicate } = await queue.enqueue(req, { freshCallId: true });
      assert.equal(callId, req.Header['X-Call-Id']?.[0]);
      assert.equal(duplicate, false);
      assert.equal((await queue.status(callId))?.state, 'queued');
      const keyed = queueRequest(req.Function);
      const first = await queue.enqueue(keyed, { freshCallId: true, idempotencyKey: 'k-fresh' });
      const again = await queue.enqueue(queueRequest(req.Function), {
        freshCallId: true,
        idempotencyKey: 'k-fresh',
      });
      assert.deepEqual(again, { callId: first.callId, duplicate: true });
      const ran: string[] = [];
      consume((_got, delivery) => {
        ran.push(delivery.callId);
        return Promise.resolve(ack(delivery));
      });
      await waitFor(
        async () =>
          (await queue.status(callId))?.state === 'succeeded' &&
          (await queue.status(first.callId))?.state === 'succeeded',
        { what: 'both calls to succeed' },
      );
      assert.deepEqual(ran.sort(), [callId, first.callId].sort());
    });

    it('marks an acknowledged non-2xx answer failed, with its status and body excerpt', async () => {
      const { callId } = await queue.enqueue(queueRequest(randomFunction()));
      consume((_req, delivery) =>
        Promise.resolve({ outcome: 'ack', attempt: attempt(delivery, 400, 'bad order') }),
      );
      const record = await waitFor(
        async () => {
          const got = await queue.status(callId);
          return got?.state === 'failed' && got;
        },
        { what: 'the call to fail' },
      );
      assert.equal(record.lastStatus, 400);
      assert.equal(record.lastBodyExcerpt, 'bad order');
    });

    it('retries after the delay asked, with the attempts so far', async () => {
      const { callId } = await queue.enqueue(queueRequest(randomFunction()));
      const deliveries: { at: number; attempts: number }[] = [];
      consume((_req, delivery) => {
        deliveries.push({ at: Date.now(), attempts: delivery.attempts.length });
        if (delivery.attempts.length < 2) {
          return Promise.resolve({
            outcome: 'retry',
            attempt: attempt(delivery, 503),
            delayMs: 300,
            reason: 'status 503',
          });
        }
        return Promise.resolve(ack(delivery, 200));
      });
      const record = await waitFor(
        async () => {
          const got = await queue.status(callId);
          return got?.state === 'succeeded' && got;
        },
        { what: 'the call to succeed on its third attempt' },
      );
      assert.deepEqual(
        deliveries.map((d) => d.attempts),
        [0, 1, 2],
      );
      for (let i = 1; i < deliveries.length; i++) {
        const gap = deliveries[i]!.at - deliveries[i - 1]!.at;
        assert.ok(gap >= 280, `retry ${i} came after ${gap}ms, asked 300ms`);
      }
      assert.deepEqual(
        record.attempts.map((a) => a.status),
        [503, 503, 200],
      );
    });

    it('shows a call waiting for its retry as queued, with the time of its next attempt', async () => {
      const { callId } = await queue.enqueue(queueRequest(randomFunction()));
      consume((_req, delivery) =>
        Promise.resolve({
          outcome: 'retry',
          attempt: attempt(delivery, 502),
          delayMs: 60_000,
          reason: 'status 502',
        }),
      );
      const record = await waitFor(
        async () => {
          const got = await queue.status(callId);
          return got?.state === 'queued' && got.attempts.length === 1 && got;
        },
        { what: 'the retry to be scheduled' },
      );
      assert.ok(record.nextAttemptAt, 'nextAttemptAt is set');
      assert.ok(Date.parse(record.nextAttemptAt) > Date.now() + 50_000);
      assert.equal(record.lastStatus, 502);
    });

    it('keeps dead letters whole; lists, filters, redrives and purges them', async () => {
      const fn = randomFunction();
      const other = randomFunction();
      const first = queueRequest(fn);
      const { callId } = await queue.enqueue(first);
      const { callId: otherId } = await queue.enqueue(queueRequest(other));
      const runs: Delivery[] = [];
      let giveUp = true;
      consume((_req, delivery) => {
        runs.push(delivery);
        if (!giveUp) return Promise.resolve(ack(delivery, 200));
        return Promise.resolve({
          outcome: 'dead-letter',
          attempt: { ...attempt(delivery, 500, 'it broke') },
          reason: 'attempts exhausted',
        });
      });
      await waitFor(async () => (await queue.deadLetters({ limit: 10 })).items.length >= 2, {
        what: 'two dead letters',
      });
      const letters = (await queue.deadLetters({ function: fn, limit: 10 })).items;
      assert.equal(letters.length, 1);
      const listed = letters[0]!;
      assert.equal(listed.callId, callId);
      assert.deepEqual(listed.request, {
        Method: 'PUT',
        Path: '/orders/1',
        QueryString: 'a=1&b=two',
        BodyBytes: 8,
      });
      const letter = (await queue.deadLetter(callId))!;
      assert.equal(letter.callId, callId);
      assert.equal(letter.state, 'dead-lettered');
      assert.equal(letter.reason, 'attempts exhausted');
      assert.equal(letter.lastStatus, 500);
      assert.equal(letter.lastBodyExcerpt, 'it broke');
      assert.deepEqual(letter.request, first);
      assert.equal(letter.attempts.length, 1);
      assert.equal((await queue.deadLetter(otherId))?.function, other);
      assert.equal(await queue.deadLetter(randomUUID()), undefined);
      assert.equal((await queue.status(callId))?.state, 'dead-lettered');

      giveUp = false;
      assert.deepEqual(await queue.redrive({ callId }), [callId]);
      const record = await waitFor(
        async () => {
          const got = await queue.status(callId);
          return got?.state === 'succeeded' && got;
        },
        { what: 'the redriven call to succeed' },
      );
      assert.equal(record.attempts.length, 2, 'the history is kept');
      const redriven = runs.filter((run) => run.callId === callId).at(-1)!;
      assert.equal(redriven.priorAttempts, 1);
      assert.equal((await queue.deadLetters({ function: fn, limit: 10 })).items.length, 0);
      assert.equal(await queue.deadLetter(callId), undefined, 'not a dead letter any more');

      assert.equal(await queue.purge({ function: other }), 1);
      assert.deepEqual(await queue.deadLetters({ limit: 10 }), { items: [] });
      assert.equal(await queue.status(otherId), undefined);
    });

    it('keeps a call buried from elsewhere as a dead letter, redriven like any other', async () => {
      const fn = randomFunction();
      const req = queueRequest(fn);
      const attempts = [
        { attempt: 1, startedAt: new Date().toISOString(), durationMs: 5, status: 503 },
      ];
      const callId = await queue.bury({
        request: req,
        attempts,
        lastStatus: 503,
        lastBodyExcerpt: 'busy',
        reason: 'not delivered: 503 after 1 attempts',
      });
      assert.equal(callId, req.Header['X-Call-Id']?.[0]);
      const letter = await queue.deadLetter(callId);
      assert.equal(letter?.state, 'dead-lettered');
      assert.deepEqual(letter?.request, req);
      assert.deepEqual(letter?.attempts, attempts);
      assert.equal(letter?.lastStatus, 503);
      assert.equal(letter?.lastBodyExcerpt, 'busy');
      assert.equal(letter?.reason, 'not delivered: 503 after 1 attempts');
      assert.equal((await queue.status(callId))?.state, 'dead-lettered');
      assert.equal((await queue.stats())[fn]?.deadLettered, 1);
      await assert.rejects(
        queue.bury({ request: req, attempts: [], reason: 'again' }),
        ConflictError,
      );

      const seen: Delivery[] = [];
      consume((_req, delivery) => {
        seen.push(delivery);
        return Promise.resolve(ack(delivery));
      });
      assert.deepEqual(await queue.redrive({ callId }), [callId]);
      await waitFor(async () => (await queue.status(callId))?.state === 'succeeded', {
        what: 'the redriven call to succeed',
      });
      assert.equal(seen.length, 1);
      assert.equal(seen[0]?.priorAttempts, 1);
    });

    it('delivers a deferred call again without recording an attempt', async () => {
      const { callId } = await queue.enqueue(queueRequest(randomFunction()));
      let deliveries = 0;
      consume((_req, delivery) => {
        deliveries += 1;
        if (deliveries === 1) return Promise.resolve({ outcome: 'defer', delayMs: 100 });
        return Promise.resolve(ack(delivery));
      });
      const record = await waitFor(
        async () => {
          const got = await queue.status(callId);
          return got?.state === 'succeeded' && got;
        },
        { what: 'the deferred call to run' },
      );
      assert.equal(deliveries, 2);
      assert.equal(record.attempts.length, 1);
    });

    it('delivers again a call whose handler threw: nothing is lost to a bug', async () => {
      const { callId } = await queue.enqueue(queueRequest(randomFunction()));
      let deliveries = 0;
      consume((_req, delivery) => {
        deliveries += 1;
        if (deliveries === 1) return Promise.reject(new Error('a bug'));
        return Promise.resolve(ack(delivery));
      });
      await waitFor(async () => (await queue.status(callId))?.state === 'succeeded', {
        timeoutMs: 10_000,
        what: 'the call to run after the handler threw',
      });
      assert.equal(deliveries, 2);
    });

    it('queues a call once per Idempotency-Key', async () => {
      const fn = randomFunction();
      const key = randomUUID();
      const first = await queue.enqueue(queueRequest(fn), { idempotencyKey: key });
      const again = await queue.enqueue(queueRequest(fn), { idempotencyKey: key });
      assert.equal(again.callId, first.callId);
      assert.equal(again.duplicate, true);
      const other = await queue.enqueue(queueRequest(fn), { idempotencyKey: randomUUID() });
      assert.notEqual(other.callId, first.callId);
      const delivered: string[] = [];
      consume((_req, delivery) => {
        delivered.push(delivery.callId);
        return Promise.resolve(ack(delivery));
      });
      await waitFor(() => delivered.length === 2, { what: 'two deliveries' });
      assert.deepEqual(delivered.sort(), [first.callId, other.callId].sort());
    });

    it('scopes an Idempotency-Key to its function, and refuses it for another request (422)', async () => {
      const fn = randomFunction();
      const key = randomUUID();
      const first = await queue.enqueue(queueRequest(fn), { idempotencyKey: key });
      // Another function's call with the same key is a call of its own.
      const elsewhere = await queue.enqueue(queueRequest(randomFunction()), {
        idempotencyKey: key,
      });
      assert.equal(elsewhere.duplicate, false);
      assert.notEqual(elsewhere.callId, first.callId);
      // The same request (its X-Call-Id aside) is the first call.
      assert.deepEqual(await queue.enqueue(queueRequest(fn), { idempotencyKey: key }), {
        callId: first.callId,
        duplicate: true,
      });
      for (const differs of [
        { Body: Buffer.from('another body').toString('base64') },
        { Method: 'POST' },
        { Path: '/orders/2' },
        { QueryString: 'a=2' },
      ]) {
        const req = queueRequest(fn, differs);
        await assert.rejects(
          queue.enqueue(req, { idempotencyKey: key }),
          (error: unknown) => error instanceof IdempotencyKeyReusedError && error.status === 422,
          JSON.stringify(differs),
        );
        assert.equal(await queue.status(req.Header['X-Call-Id']![0]!), undefined, 'not queued');
      }
      assert.equal((await queue.stats())[fn]?.queued, 1);
    });

    it('pages dead letters oldest first, by function, without their bodies', async () => {
      const fn = randomFunction();
      const other = randomFunction();
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        const req = queueRequest(i % 3 === 2 ? other : fn, {
          Body: Buffer.from('x'.repeat(1000 + i)).toString('base64'),
        });
        ids.push(await queue.bury({ request: req, attempts: [], reason: `letter ${i}` }));
      }
      const pageAll = async (query: Omit<DeadLetterQuery, 'cursor'>) => {
        const seen: DeadLetterSummary[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await queue.deadLetters({ ...query, ...(cursor ? { cursor } : {}) });
          assert.ok(page.items.length <= query.limit, 'no more than the limit');
          seen.push(...page.items);
          cursor = page.next;
          pages += 1;
          assert.ok(pages < 20, 'the pages end');
        } while (cursor !== undefined);
        return seen;
      };
      const all = await pageAll({ limit: 3 });
      assert.deepEqual(
        all.map((letter) => letter.callId),
        ids,
      );
      const first = all[0]!;
      assert.deepEqual(first.request, {
        Method: 'PUT',
        Path: '/orders/1',
        QueryString: 'a=1&b=two',
        BodyBytes: 1000,
      });
      assert.equal(first.reason, 'letter 0');
      assert.equal('Body' in first.request, false);
      assert.equal('Header' in first.request, false);
      assert.deepEqual(
        (await pageAll({ limit: 2, function: other })).map((letter) => letter.callId),
        [ids[2], ids[5]],
      );
      assert.deepEqual(await queue.deadLetters({ limit: 5, function: randomFunction() }), {
        items: [],
      });
      const one = await queue.deadLetters({ limit: 1 });
      assert.equal(one.items.length, 1);
      assert.ok(one.next, 'a cursor while more follow');
      await assert.rejects(
        queue.deadLetters({ limit: 1, cursor: 'not-a-cursor' }),
        ValidationError,
      );
      // Whole on its own.
      const whole = await queue.deadLetter(ids[1]!);
      assert.equal(Buffer.from(whole!.request.Body, 'base64').toString(), 'x'.repeat(1001));
      // Redrive and purge walk the pages too.
      assert.equal(await queue.purge({ function: other }), 2);
      assert.equal((await pageAll({ limit: 2 })).length, 5);
      assert.equal(await queue.purge({}), 5);
      assert.deepEqual(await queue.deadLetters({ limit: 10 }), { items: [] });
    });

    it('holds at most maxQueuedCalls calls waiting or running; refuses more, storing nothing', async () => {
      const capped = await open({ maxQueuedCalls: 2 });
      const fn = randomFunction();
      const a = await capped.enqueue(queueRequest(fn));
      const keyed = queueRequest(fn);
      const b = await capped.enqueue(keyed, { idempotencyKey: 'kept' });
      const refused = queueRequest(fn);
      await assert.rejects(
        capped.enqueue(refused),
        (error: unknown) => error instanceof QueueFullError && error.status === 429,
      );
      await assert.rejects(capped.enqueue(queueRequest(fn), { freshCallId: true }), QueueFullError);
      assert.equal(await capped.status(refused.Header['X-Call-Id']![0]!), undefined);
      // A resubmission is the call already queued, full or not.
      assert.deepEqual(await capped.enqueue(queueRequest(fn), { idempotencyKey: 'kept' }), {
        callId: b.callId,
        duplicate: true,
      });
      assert.equal((await capped.stats())[fn]?.queued, 2);
      // Dead letters are not waiting: once both are, there is room again.
      consume(
        (_req, delivery) =>
          Promise.resolve({ outcome: 'dead-letter', attempt: attempt(delivery, 500), reason: 'x' }),
        4,
        capped,
      );
      await waitFor(async () => (await capped.stats())[fn]?.deadLettered === 2, {
        what: 'both calls dead-lettered',
      });
      const stopping = consumers.splice(0);
      for (const consumer of stopping) consumer.stop.abort();
      await Promise.all(stopping.map((consumer) => consumer.done));
      // (JetStream drops an acknowledged message a moment after the record says so.)
      const c = await waitFor<Enqueued>(
        () =>
          capped.enqueue(queueRequest(fn)).catch((error: unknown) => {
            if (error instanceof QueueFullError) return false;
            throw error;
          }),
        { what: 'room for a call' },
      );
      await capped.enqueue(queueRequest(fn));
      await assert.rejects(capped.enqueue(queueRequest(fn)), QueueFullError);
      // A redrive is held to the cap as well.
      await assert.rejects(capped.redrive({ callId: a.callId }), QueueFullError);
      assert.equal((await capped.status(a.callId))?.state, 'dead-lettered');
      // Run the calls waiting: room again.
      consume((_req, delivery) => Promise.resolve(ack(delivery)), 4, capped);
      await waitFor(async () => (await capped.status(c.callId))?.state === 'succeeded', {
        what: 'the waiting calls to run',
      });
      await waitFor(
        () =>
          capped.redrive({ callId: a.callId }).catch((error: unknown) => {
            if (error instanceof QueueFullError) return false;
            throw error;
          }),
        { what: 'room for the redrive' },
      );
      await waitFor(async () => (await capped.status(a.callId))?.state === 'succeeded', {
        what: 'the redriven call to run',
      });
    });

    it('cancels a waiting call; not a running one; an unknown one is NotFound', async () => {
      const fn = randomFunction();
      const { callId: waiting } = await queue.enqueue(queueRequest(fn));
      assert.equal(await queue.cancel(waiting), true);
      assert.equal((await queue.status(waiting))?.state, 'cancelled');

      const { callId: running } = await queue.enqueue(queueRequest(fn));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const delivered: string[] = [];
      consume(async (_req, delivery) => {
        delivered.push(delivery.callId);
        await released;
        return ack(delivery);
      });
      await waitFor(() => delivered.includes(running), { what: 'the second call to start' });
      assert.equal(await queue.cancel(running), false);
      release();
      await waitFor(async () => (await queue.status(running))?.state === 'succeeded', {
        what: 'the running call to finish',
      });
      assert.deepEqual(delivered, [running], 'the cancelled call never ran');
      await assert.rejects(queue.cancel(randomUUID()), NotFoundError);
    });

    it('runs at most `concurrency` deliveries at once, and all of them', async () => {
      const fn = randomFunction();
      const ids = new Set<string>();
      for (let i = 0; i < 20; i++) ids.add((await queue.enqueue(queueRequest(fn))).callId);
      let running = 0;
      let most = 0;
      const done = new Set<string>();
      consume(async (_req, delivery) => {
        running += 1;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, 20));
        running -= 1;
        done.add(delivery.callId);
        return ack(delivery);
      }, 3);
      await waitFor(() => done.size === 20, { timeoutMs: 10_000, what: 'every call to run' });
      assert.ok(most <= 3, `at most 3 at once, saw ${most}`);
      assert.ok(most >= 2, `deliveries overlap, saw ${most}`);
      assert.deepEqual([...done].sort(), [...ids].sort());
    });

    it('stops consuming when aborted, after the deliveries in flight settle', async () => {
      const fn = randomFunction();
      const { callId } = await queue.enqueue(queueRequest(fn));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let started = false;
      const consumer = consume(async (_req, delivery) => {
        started = true;
        await released;
        return ack(delivery);
      });
      await waitFor(() => started, { what: 'the delivery to start' });
      consumer.stop.abort();
      let stopped = false;
      void consumer.done.then(() => (stopped = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(stopped, false, 'waits for the delivery in flight');
      release();
      await consumer.done;
      assert.equal((await queue.status(callId))?.state, 'succeeded');
      const { callId: later } = await queue.enqueue(queueRequest(fn));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal((await queue.status(later))?.state, 'queued', 'nothing consumed after');
    });

    it('delivers again, marked redelivered, what a killed worker held', async () => {
      const fn = randomFunction();
      const { callId } = await queue.enqueue(queueRequest(fn));
      const doomed = await open();
      let held = false;
      consume(
        () => {
          held = true;
          return new Promise<Settlement>(() => {}); // killed before it answers
        },
        1,
        doomed,
      );
      await waitFor(() => held, { what: 'the doomed worker to take the call' });
      await subject.abandon(doomed);

      const survivor = await open();
      const redelivered: Delivery[] = [];
      consume(
        (_req, delivery) => {
          redelivered.push(delivery);
          return Promise.resolve(ack(delivery));
        },
        1,
        survivor,
      );
      await waitFor(async () => (await survivor.status(callId))?.state === 'succeeded', {
        timeoutMs: redeliveryTimeoutMs,
        what: 'the abandoned call to run again',
      });
      assert.equal(redelivered.length, 1);
      assert.equal(redelivered[0]?.redelivered, true);
    });

    it('counts queued, running and dead-lettered calls per function, with the oldest age', async () => {
      const fn = randomFunction();
      await queue.enqueue(queueRequest(fn));
      await queue.enqueue(queueRequest(fn));
      await new Promise((resolve) => setTimeout(resolve, 30));
      const stats = await queue.stats();
      assert.equal(stats[fn]?.queued, 2);
      assert.equal(stats[fn]?.running, 0);
      assert.ok((stats[fn]?.oldestQueuedAgeMs ?? 0) >= 25);
      consume((_req, delivery) =>
        Promise.resolve({ outcome: 'dead-letter', attempt: attempt(delivery, 500), reason: 'x' }),
      );
      await waitFor(async () => (await queue.stats())[fn]?.deadLettered === 2, {
        what: 'both calls dead-lettered',
      });
      const after = (await queue.stats())[fn];
      assert.equal(after?.queued, 0);
      assert.equal(after?.oldestQueuedAgeMs, 0);
    });

    it('counts a function named after an Object.prototype member like any other', async () => {
      const fn: string = 'constructor';
      await queue.enqueue(queueRequest(fn));
      const stats = await queue.stats();
      assert.equal(stats[fn]?.queued, 1);
      assert.equal(stats[fn]?.deadLettered, 0);
    });
  });
}
