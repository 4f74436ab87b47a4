import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { UnavailableError, ValidationError } from '../../core/errors.js';
import type { Delivery, Queue, Settlement } from '../../core/queue.js';
import { Kvm } from '@nats-io/kv';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { NatsQueue } from '../../queue/nats/nats-queue.js';
import { freePort } from '../helpers/http.js';
import { startNats } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { queueContract, queueRequest } from './queue-contract.js';

// One nats-server for the file; every test gets its own stream and buckets.
const server = await startNats();
after(() => server.stop());

/** A killed worker's call comes back after this long. */
const ackWaitMs = 1000;

const randomName = () => `q-${randomBytes(4).toString('hex')}`;

const ack = (delivery: Delivery): Settlement => ({
  outcome: 'ack',
  attempt: {
    record: {
      attempt: delivery.attempts.length + 1,
      startedAt: new Date().toISOString(),
      durationMs: 1,
      status: 200,
    },
  },
});

queueContract(
  'NatsQueue',
  () => {
    const name = randomName();
    return Promise.resolve({
      open: (options) =>
        Promise.resolve(new NatsQueue({ url: server.url, name, leaseMs: ackWaitMs, ...options })),
      // Closing the connection without settling is what a kill leaves: the server hands the
      // unacknowledged message to another worker once its ack wait is over.
      abandon: (queue: Queue) => queue.close(),
      close: () => Promise.resolve(),
    });
  },
  { redeliveryTimeoutMs: 10 * ackWaitMs },
);

describe('NatsQueue', () => {
  it('answers UnavailableError (503) while its server cannot be reached', async () => {
    for (const url of [
      `nats://127.0.0.1:${await freePort()}`,
      'nats://no-such-host.invalid:4222',
    ]) {
      const queue = new NatsQueue({ url, name: randomName(), leaseMs: ackWaitMs });
      try {
        await assert.rejects(queue.enqueue(queueRequest('x')), (error: Error) => {
          assert.ok(error instanceof UnavailableError, `${error.name}: ${error.message}`);
          assert.match(error.message, /cannot be reached/);
          return true;
        });
      } finally {
        await queue.close();
      }
    }
  });

  it('refuses a request too big for one message, and stores nothing', async () => {
    const queue = new NatsQueue({ url: server.url, name: randomName(), leaseMs: ackWaitMs });
    try {
      const req = queueRequest('big', { Body: randomBytes(1024 * 1024).toString('base64') });
      await assert.rejects(queue.enqueue(req), ValidationError);
      assert.equal(await queue.status(req.Header['X-Call-Id']![0]!), undefined);
    } finally {
      await queue.close();
    }
  });

  it('keeps a delivery that outlasts the ack wait while its handler works', async () => {
    const queue = new NatsQueue({ url: server.url, name: randomName(), leaseMs: ackWaitMs });
    const stop = new AbortController();
    try {
      const { callId } = await queue.enqueue(queueRequest('slow'));
      const deliveries: Delivery[] = [];
      const consuming = queue.consume(
        async (_req, delivery) => {
          deliveries.push(delivery);
          await sleep(3 * ackWaitMs);
          return ack(delivery);
        },
        { concurrency: 2 },
        stop.signal,
      );
      await waitFor(async () => (await queue.status(callId))?.state === 'succeeded', {
        timeoutMs: 10_000,
        what: 'the slow call to succeed',
      });
      stop.abort();
      await consuming;
      assert.equal(deliveries.length, 1, 'not handed to a second worker meanwhile');
    } finally {
      stop.abort();
      await queue.close();
    }
  });

  it('does not run again a call settled by a worker that died before acknowledging', async () => {
    const name = randomName();
    const queue = new NatsQueue({ url: server.url, name, leaseMs: ackWaitMs });
    const nc = await connect({ servers: server.url });
    const stop = new AbortController();
    try {
      const { callId } = await queue.enqueue(queueRequest('settled'));
      // What a worker leaves when it dies between writing the outcome to `done` and removing the
      // record from `live`: the record says running, `done` says succeeded, the message is back.
      const kvm = new Kvm(nc);
      const live = await kvm.open(`${name}-calls`);
      const done = await kvm.open(`${name}-done`);
      const entry = await live.get(callId);
      const record = entry!.json<Record<string, unknown>>();
      await live.update(callId, JSON.stringify({ ...record, state: 'running' }), entry!.revision);
      await done.put(callId, JSON.stringify({ ...record, state: 'succeeded' }));
      const ran: string[] = [];
      const consuming = queue.consume(
        (_req, delivery) => {
          ran.push(delivery.callId);
          return Promise.resolve(ack(delivery));
        },
        { concurrency: 2 },
        stop.signal,
      );
      await waitFor(async () => (await live.get(callId))?.operation !== 'PUT', {
        what: 'the record to leave live',
      });
      stop.abort();
      await consuming;
      assert.deepEqual(ran, []);
      assert.equal((await queue.status(callId))?.state, 'succeeded');
    } finally {
      stop.abort();
      await queue.close();
      await nc.close();
    }
  });

  it('runs a call in five JetStream writes and an ack, and reads nothing', async () => {
    const name = randomName();
    const queue = new NatsQueue({ url: server.url, name });
    const spy = await connect({ servers: server.url });
    const seen = { writes: 0, acks: 0, reads: 0, requests: 0 };
    const count = (subject: string, what: keyof typeof seen) =>
      spy.subscribe(subject, {
        callback: () => {
          seen[what] += 1;
        },
      });
    const calls = 300;
    let acked = 0;
    const stop = new AbortController();
    try {
      await queue.stats(); // connected, streams and buckets made
      for (const subject of [`$KV.${name}-calls.>`, `$KV.${name}-done.>`, `$KV.${name}-keys.>`]) {
        count(subject, 'writes');
      }
      count(`${name}.calls.>`, 'writes');
      count(`${name}.dead.>`, 'writes');
      count(`$JS.ACK.${name}.>`, 'acks');
      count('$JS.API.DIRECT.GET.>', 'reads');
      count('$JS.API.STREAM.MSG.GET.>', 'reads');
      count('$JS.API.STREAM.INFO.>', 'requests');
      await spy.flush();
      const consuming = queue.consume(
        (_req, delivery) => {
          acked += 1;
          return Promise.resolve(ack(delivery));
        },
        { concurrency: 16 },
        stop.signal,
      );
      // As the gateway enqueues: ids it minted, 32 at once.
      for (let sent = 0; sent < calls; sent += 32) {
        await Promise.all(
          Array.from({ length: Math.min(32, calls - sent) }, (_, i) =>
            queue.enqueue(queueRequest(`hot-${i % 2}`), { freshCallId: true }),
          ),
        );
      }
      await waitFor(() => acked === calls, { timeoutMs: 20_000, what: 'every call acked' });
      stop.abort();
      await consuming;
      await waitFor(() => seen.acks >= calls, { what: 'every ack sent' });
      await spy.flush();
      // Record created, message published, claimed, outcome into `done`, deleted from `calls`:
      // a write retried through a slow moment may count twice, so a little room.
      assert.ok(seen.writes >= 5 * calls, `${seen.writes} writes for ${calls} calls`);
      assert.ok(seen.writes <= 5.05 * calls, `${seen.writes} writes for ${calls} calls`);
      assert.equal(seen.acks, calls);
      // The claim takes the record from the message (Fnbus-Queued): no read.
      assert.ok(seen.reads <= calls / 100, `${seen.reads} reads for ${calls} calls`);
      assert.equal(seen.requests, 0);
      for (let i = 0; i < 2; i += 1) assert.equal((await queue.stats())[`hot-${i}`], undefined);
    } finally {
      stop.abort();
      await spy.close();
      await queue.close();
    }
  });

  it('claims in one write a call published by an older fnbus (its record in Fnbus-Record)', async () => {
    const name = randomName();
    const queue = new NatsQueue({ url: server.url, name, leaseMs: ackWaitMs });
    const nc = await connect({ servers: server.url });
    const stop = new AbortController();
    try {
      await queue.stats(); // streams and buckets made
      const req = queueRequest('older');
      const callId = req.Header['X-Call-Id']![0]!;
      const now = new Date().toISOString();
      const messageId = `${callId}~${randomBytes(16).toString('hex')}`;
      // Exactly as an older fnbus enqueued: the record, then the message carrying all of it.
      const record = {
        callId,
        function: 'older',
        enqueuedAt: now,
        messageId,
        state: 'queued',
        attempts: [],
        queuedAt: now,
        priorAttempts: 0,
        updatedAt: now,
        nextAttemptAt: now,
      };
      const live = await new Kvm(nc).open(`${name}-calls`);
      const revision = await live.create(callId, JSON.stringify(record));
      const js = jetstream(nc);
      const headed = headers();
      headed.set('Fnbus-Call-Id', callId);
      headed.set('Fnbus-Record', JSON.stringify({ revision, call: record }));
      await js.publish(`${name}.calls.older`, JSON.stringify(req), {
        msgID: messageId,
        headers: headed,
      });
      let reads = 0;
      nc.subscribe('$JS.API.DIRECT.GET.>', {
        callback: () => {
          reads += 1;
        },
      });
      await nc.flush();
      const ran: string[] = [];
      const consuming = queue.consume(
        (_req, delivery) => {
          ran.push(delivery.callId);
          return Promise.resolve(ack(delivery));
        },
        { concurrency: 2 },
        stop.signal,
      );
      await waitFor(() => ran.length > 0, { what: 'the call to run' });
      await nc.flush();
      assert.equal(reads, 0, 'the claim read nothing');
      await waitFor(async () => (await queue.status(callId))?.state === 'succeeded', {
        what: 'the call to succeed',
      });
      stop.abort();
      await consuming;
      assert.deepEqual(ran, [callId]);
      const status = await queue.status(callId);
      assert.equal(status?.enqueuedAt, now);
      assert.equal(status?.attempts.length, 1);
    } finally {
      stop.abort();
      await queue.close();
      await nc.close();
    }
  });

  it("sweeps finished calls' deletion markers, and keeps a record created again since", async () => {
    const name = randomName();
    const sweep = { everyMs: 300, olderThanMs: 0 };
    const queue = new NatsQueue({ url: server.url, name, leaseMs: ackWaitMs, sweep });
    const nc = await connect({ servers: server.url });
    const stop = new AbortController();
    try {
      const reused = queueRequest('swept');
      const reusedId = reused.Header['X-Call-Id']![0]!;
      const ids = [reusedId];
      await queue.enqueue(reused);
      for (let i = 0; i < 20; i += 1) ids.push((await queue.enqueue(queueRequest('swept'))).callId);
      let acked = 0;
      const consuming = queue.consume(
        (_req, delivery) => {
          acked += 1;
          return Promise.resolve(ack(delivery));
        },
        { concurrency: 4 },
        stop.signal,
      );
      await waitFor(() => acked === ids.length, { what: 'every call acked' });
      stop.abort();
      await consuming;
      // One call's id taken again once it is gone from the live records (an older fnbus's
      // marker case too): the sweep must leave its new record alone.
      const live = await new Kvm(nc).open(`${name}-calls`);
      await waitFor(async () => (await live.get(reusedId)) === null, {
        what: 'the swept marker of the reused id',
      });
      const again = await live.create(reusedId, JSON.stringify({ again: true }));
      const jsm = await jetstreamManager(nc);
      await waitFor(async () => (await jsm.streams.info(`KV_${name}-calls`)).state.messages === 1, {
        what: 'every marker swept',
      });
      const entry = await live.get(reusedId);
      assert.equal(entry?.revision, again);
      assert.deepEqual(entry?.json(), { again: true });
      for (const id of ids.slice(1)) assert.equal((await queue.status(id))?.state, 'succeeded');
    } finally {
      stop.abort();
      await queue.close();
      await nc.close();
    }
  });

  it('shares the calls among workers: each runs once', async () => {
    const name = randomName();
    const workers = [0, 1].map(() => new NatsQueue({ url: server.url, name, leaseMs: ackWaitMs }));
    const stop = new AbortController();
    try {
      const ids = new Set<string>();
      for (let i = 0; i < 40; i++) {
        ids.add((await workers[0]!.enqueue(queueRequest('shared'))).callId);
      }
      const ranBy = new Map<string, number[]>();
      const consuming = workers.map((worker, index) =>
        worker.consume(
          async (_req, delivery) => {
            ranBy.set(delivery.callId, [...(ranBy.get(delivery.callId) ?? []), index]);
            await sleep(10);
            return ack(delivery);
          },
          { concurrency: 2 },
          stop.signal,
        ),
      );
      await waitFor(() => ranBy.size === ids.size, { what: 'every call to run' });
      stop.abort();
      await Promise.all(consuming);
      assert.deepEqual([...ranBy.keys()].sort(), [...ids].sort());
      assert.ok(
        [...ranBy.values()].every((by) => by.length === 1),
        'each call ran once',
      );
      const byWorker = [0, 1].map((w) => [...ranBy.values()].filter(([by]) => by === w).length);
      assert.ok(
        byWorker.every((count) => count > 0),
        `both workers took calls: ${byWorker.join(', ')}`,
      );
    } finally {
      stop.abort();
      for (const worker of workers) await worker.close();
    }
  });

  it('carries on through a restart of the server: every accepted call runs', async (t) => {
    const name = randomName();
    const producer = new NatsQueue({ url: server.url, name, leaseMs: ackWaitMs });
    const worker = new NatsQueue({ url: server.url, name, leaseMs: ackWaitMs });
    const stop = new AbortController();
    const runs = new Map<string, number>();
    const accepted = new Set<string>();
    let refused = 0;
    let producing = true;
    try {
      const consuming = worker.consume(
        async (_req, delivery) => {
          runs.set(delivery.callId, (runs.get(delivery.callId) ?? 0) + 1);
          await sleep(5);
          return ack(delivery);
        },
        { concurrency: 4 },
        stop.signal,
      );
      // Four producers enqueue all along; a call counts once its enqueue resolved (the 202).
      const producers = Array.from({ length: 4 }, async () => {
        while (producing) {
          try {
            accepted.add((await producer.enqueue(queueRequest('steady'))).callId);
          } catch {
            refused += 1; // not accepted: the gateway would have answered 5xx
          }
        }
      });
      await waitFor(() => runs.size >= 50, { what: 'calls to flow' });
      await server.restart();
      const atRestart = accepted.size;
      await waitFor(() => accepted.size >= atRestart + 50, {
        timeoutMs: 30_000,
        what: 'enqueues to carry on after the restart',
      });
      await waitFor(() => runs.size >= atRestart + 50, {
        timeoutMs: 30_000,
        what: 'calls to run after the restart',
      });
      producing = false;
      await Promise.all(producers);

      await waitFor(() => [...accepted].every((id) => runs.has(id)), {
        timeoutMs: 30_000,
        what: 'every accepted call to run',
      });
      await waitFor(
        async () => {
          for (const id of accepted) {
            if ((await producer.status(id))?.state !== 'succeeded') return false;
          }
          return true;
        },
        { timeoutMs: 30_000, what: 'every accepted call to be recorded succeeded' },
      );
      const twice = [...runs.values()].filter((count) => count > 1).length;
      t.diagnostic(
        `accepted ${accepted.size}, refused ${refused}, ${atRestart} before the restart, ` +
          `${twice} ran more than once`,
      );
      // At least once: a restart may run a few twice (acks lost with the server), never skip one.
      assert.ok(accepted.size > 100, `accepted ${accepted.size} calls, refused ${refused}`);
      assert.ok(twice <= 8, `${twice} calls ran more than once`);
      // Stats count messages: a copy whose ack the restart lost counts until a worker drops it
      // (one ack wait later), one the server kept though acknowledged until a queue connects.
      const reopened = new NatsQueue({ url: server.url, name, leaseMs: ackWaitMs });
      try {
        await waitFor(
          async () => {
            const left = (await reopened.stats()).steady;
            return !left || (left.queued === 0 && left.running === 0);
          },
          { timeoutMs: 10 * ackWaitMs, what: 'no call left behind' },
        );
      } finally {
        await reopened.close();
      }
      stop.abort();
      await consuming;
    } finally {
      producing = false;
      stop.abort();
      await worker.close();
      await producer.close();
    }
  });

  it('answers stats without reading the backlog: JetStream requests do not grow with it', async () => {
    const name = randomName();
    const queue = new NatsQueue({ url: server.url, name, leaseMs: ackWaitMs });
    const spy = await connect({ servers: server.url });
    /** JetStream API requests (stream info, consumers, fetches...) made during one stats(). */
    const requestsFor = async (): Promise<number> => {
      let requests = 0;
      const sub = spy.subscribe('$JS.API.>', {
        callback: () => {
          requests += 1;
        },
      });
      await spy.flush();
      await queue.stats();
      await spy.flush();
      sub.unsubscribe();
      return requests;
    };
    try {
      for (let i = 0; i < 20; i += 1) await queue.enqueue(queueRequest(`small-${i % 2}`));
      const few = await requestsFor();
      for (let sent = 0; sent < 3000; sent += 250) {
        await Promise.all(
          Array.from({ length: 250 }, (_, i) =>
            queue.enqueue(queueRequest(`large-${i % 2}`), { freshCallId: true }),
          ),
        );
      }
      const stats = await queue.stats();
      assert.equal((stats['large-0']?.queued ?? 0) + (stats['large-1']?.queued ?? 0), 3000);
      assert.ok((stats['large-0']?.oldestQueuedAgeMs ?? 0) > 0);
      const many = await requestsFor();
      // Per function at most one request, whatever each one's backlog.
      assert.ok(
        many <= few + 2,
        `${many} JetStream requests with 3,000 calls queued, ${few} with 20`,
      );
    } finally {
      await spy.close();
      await queue.close();
    }
  });

  it('counts the calls running in every worker, and names functions with dots apart', async () => {
    const name = randomName();
    const gateway = new NatsQueue({ url: server.url, name, leaseMs: ackWaitMs });
    const workers = [0, 1].map(() => new NatsQueue({ url: server.url, name, leaseMs: ackWaitMs }));
    const stop = new AbortController();
    let releaseAll!: () => void;
    const released = new Promise<void>((resolve) => (releaseAll = resolve));
    let started = 0;
    const consuming = workers.map((worker) =>
      worker.consume(
        async (_req, delivery) => {
          started += 1;
          await released;
          return ack(delivery);
        },
        { concurrency: 2 },
        stop.signal,
      ),
    );
    try {
      for (const fn of ['fn.ns', 'fn_ns', 'fn_ns', 'fn.ns'])
        await gateway.enqueue(queueRequest(fn));
      await gateway.enqueue(queueRequest('fn.ns'));
      await waitFor(() => started === 4, { what: 'four calls running, two in each worker' });
      const stats = await gateway.stats();
      assert.equal(stats['fn.ns']?.running, 2);
      assert.equal(stats['fn_ns']?.running, 2);
      assert.equal(stats['fn.ns']?.queued, 1);
      assert.equal(stats['fn_ns']?.queued, 0);
    } finally {
      releaseAll();
      stop.abort();
      await Promise.all(consuming);
      await Promise.all(workers.map((worker) => worker.close()));
      await gateway.close();
    }
  });
});
