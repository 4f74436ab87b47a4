import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ConflictError, ValidationError } from '../../core/errors.js';
import type { Queue } from '../../core/queue.js';
import { Queue as BullQueue } from 'bullmq';
import { Redis } from 'ioredis';
import { BullmqQueue } from '../../queue/bullmq/bullmq-queue.js';
import { startRedis, type RunningServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { queueContract, queueRequest } from './queue-contract.js';

// One redis-server for the file; every subject gets its own queue name.
let server: RunningServer;
before(async () => {
  server = await startRedis();
});
after(() => server.stop());

const randomName = () => `q-${randomBytes(4).toString('hex')}`;

// A short lock, so that a killed worker's call comes back within a couple of seconds.
const leaseMs = 1000;

queueContract(
  'BullmqQueue',
  () => {
    const name = randomName();
    return Promise.resolve({
      open: (options) =>
        Promise.resolve<Queue>(new BullmqQueue({ url: server.url, name, leaseMs, ...options })),
      // Closing a queue under its consumers drops their connections without settling anything,
      // as a kill would: the lock is no longer renewed, and the stalled check redelivers.
      abandon: (queue) => queue.close(),
      close: () => Promise.resolve(),
    });
  },
  { redeliveryTimeoutMs: 10_000 },
);

describe('BullmqQueue on Redis', () => {
  it('refuses a call id BullMQ cannot take as a job id', async () => {
    const queue = new BullmqQueue({ url: server.url, name: randomName() });
    try {
      for (const id of ['42', 'a:b']) {
        await assert.rejects(
          queue.enqueue(queueRequest('fn', { Header: { 'X-Call-Id': [id] } })),
          ValidationError,
        );
      }
    } finally {
      await queue.close();
    }
  });

  it("scripts only fnbus's own keys; BullMQ's are reached through its API", async () => {
    const name = randomName();
    const queue = new BullmqQueue({ url: server.url, name, leaseMs });
    // Redis's MONITOR on a plain socket: every command, as `"name" "arg" ...` lines.
    const watcher = connect(Number(new URL(server.url).port), '127.0.0.1');
    const scripted: string[][] = [];
    let pending = '';
    watcher.setEncoding('utf8');
    watcher.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\r\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const args = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map(([, arg]) => arg ?? '');
        // BullMQ's own scripts open with a --[[ ]] header; every other script is fnbus's.
        if (args[0]?.toLowerCase() === 'eval' && !args[1]?.startsWith('--[[')) scripted.push(args);
      }
    });
    watcher.write('MONITOR\r\n');
    await new Promise((resolve) => watcher.once('data', resolve));
    const stop = new AbortController();
    try {
      const fn = 'keys';
      const idempotent = await queue.enqueue(queueRequest(fn), { idempotencyKey: 'k' });
      await queue.enqueue(queueRequest(fn), { freshCallId: true });
      const cancelled = await queue.enqueue(queueRequest(fn));
      assert.equal(await queue.cancel(cancelled.callId), true);
      await queue.bury({ request: queueRequest(fn), attempts: [], reason: 'gave up' });
      const consuming = queue.consume(
        () => Promise.resolve({ outcome: 'dead-letter', reason: 'no' }),
        { concurrency: 2 },
        stop.signal,
      );
      await waitFor(async () => (await queue.stats())[fn]?.deadLettered === 3, {
        what: 'the calls dead-lettered',
      });
      stop.abort();
      await consuming;
      await queue.deadLetters({ limit: 10 });
      await queue.deadLetters({ limit: 10, function: fn });
      assert.deepEqual(await queue.redrive({ callId: idempotent.callId }), [idempotent.callId]);
      assert.equal(await queue.purge({ function: fn }), 2);
      assert.ok(scripted.length > 0);
      for (const args of scripted) {
        const keys = args.slice(3, 3 + Number(args[2]));
        assert.ok(
          args.every((arg) => !arg.startsWith(`bull:${name}`)) &&
            keys.every((key) => key.startsWith(`fnbus:${name}:`)),
          `a script named BullMQ's keys: ${JSON.stringify(args.slice(2))}`,
        );
      }
    } finally {
      stop.abort();
      watcher.destroy();
      await queue.close();
    }
  });

  it('answers stats from its tallies: a 20,000-call backlog is not read', async () => {
    const queue = new BullmqQueue({ url: server.url, name: randomName() });
    const redis = new Redis(server.url);
    /** Commands Redis ran (scripts' own calls included) during one stats(). */
    const commandsFor = async (): Promise<number> => {
      await redis.config('RESETSTAT');
      await queue.stats();
      const info = await redis.info('commandstats');
      const calls = [...info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)];
      // Less RESETSTAT itself and the INFO asking.
      return calls.reduce((sum, [, , n]) => sum + Number(n), 0) - 2;
    };
    try {
      for (let i = 0; i < 20; i += 1) await queue.enqueue(queueRequest(`small-${i % 2}`));
      const few = await commandsFor();
      for (let sent = 0; sent < 20_000; sent += 500) {
        await Promise.all(
          Array.from({ length: 500 }, (_, i) =>
            queue.enqueue(queueRequest(`large-${i % 2}`), { freshCallId: true }),
          ),
        );
      }
      const stats = await queue.stats();
      assert.equal((stats['large-0']?.queued ?? 0) + (stats['large-1']?.queued ?? 0), 20_000);
      const many = await commandsFor();
      // Per function a few commands, whatever each one's backlog.
      assert.ok(many <= few * 2 + 10, `${many} commands with 20,000 calls queued, ${few} with 20`);
    } finally {
      redis.disconnect();
      await queue.close();
    }
  });

  it('counts out of its tallies a call left there without a job, not an old call still queued', async () => {
    const name = randomName();
    const queue = new BullmqQueue({ url: server.url, name });
    const redis = new Redis(server.url);
    const stop = new AbortController();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    try {
      const { callId: old } = await queue.enqueue(queueRequest('swept'));
      // As a process killed between a call's tally and its job leaves it, ten minutes ago; and
      // the call really queued, as old.
      const tenMinutesAgo = Date.now() - 10 * 60_000;
      await redis.zadd(`fnbus:${name}:live:swept`, tenMinutesAgo, 'left-behind');
      await redis.zadd(`fnbus:${name}:live:swept`, tenMinutesAgo, old);
      assert.equal((await queue.stats()).swept?.queued, 2);
      let ran = 0;
      const consuming = queue.consume(
        async () => {
          ran += 1;
          await released;
          return {
            outcome: 'ack',
            attempt: { record: { attempt: 1, startedAt: '', durationMs: 1, status: 200 } },
          };
        },
        { concurrency: 1 },
        stop.signal,
      );
      // A consuming queue sweeps when it starts: the old call, running, stays counted.
      await waitFor(
        async () => (await redis.zscore(`fnbus:${name}:live:swept`, 'left-behind')) === null,
        {
          timeoutMs: 5000,
          what: 'the entry without a job to be counted out',
        },
      );
      await waitFor(() => ran === 1, { timeoutMs: 5000, what: 'the old call to run' });
      assert.notEqual(await redis.zscore(`fnbus:${name}:live:swept`, old), null);
      release();
      await waitFor(async () => ((await queue.stats()).swept?.queued ?? 0) === 0, {
        timeoutMs: 5000,
        what: 'the old call to settle',
      });
      stop.abort();
      await consuming;
    } finally {
      release();
      stop.abort();
      redis.disconnect();
      await queue.close();
    }
  });

  it("runs a call's enqueue, claim and ack in few Redis commands, a turn's tallies in one, no MULTI of its own", async () => {
    const queue = new BullmqQueue({ url: server.url, name: randomName() });
    const redis = new Redis(server.url);
    const calls = 300;
    let acked = 0;
    const stop = new AbortController();
    try {
      await queue.stats();
      await redis.config('RESETSTAT');
      const consuming = queue.consume(
        () => {
          acked += 1;
          return Promise.resolve({
            outcome: 'ack' as const,
            attempt: {
              record: {
                attempt: 1,
                startedAt: new Date().toISOString(),
                durationMs: 1,
                status: 200,
              },
            },
          });
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
      await waitFor(async () => Object.keys(await queue.stats()).length === 0, {
        timeoutMs: 5000,
        what: 'the live tallies to empty',
      });
      stop.abort();
      await consuming;
      const info = await redis.info('commandstats');
      const count = (name: string) =>
        Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
      const all = [...info.matchAll(/^cmdstat_[\w|]+:calls=(\d+)/gm)].reduce(
        (sum, [, n]) => sum + Number(n),
        0,
      );
      // A MULTI per call cost more client CPU than the call's other commands (ioredis copies the
      // connection's scripts into each): only the once-a-second reports make one.
      assert.ok(count('multi') < 10, `${count('multi')} MULTIs for ${calls} calls`);
      // BullMQ's own ~35 (add, take, complete, events) and the live tally's ZADDs and ZREMs, a
      // turn's sent as one per function (BullMQ itself sends no ZREM on this path).
      assert.ok(count('zrem') < calls / 4, `${count('zrem')} ZREMs for ${calls} calls`);
      assert.ok(all / calls < 37, `${(all / calls).toFixed(1)} Redis commands a call`);
    } finally {
      stop.abort();
      redis.disconnect();
      await queue.close();
    }
  });

  it('keeps a new call as its request alone, and runs and reports the calls an older fnbus queued', async () => {
    const name = randomName();
    // Finished jobs kept 1 s: BullMQ removes them as later jobs complete (the workers' option).
    const queue = new BullmqQueue({ url: server.url, name, retentionMs: 1000 });
    const redis = new Redis(server.url);
    const olderRedis = new Redis(server.url);
    const older = new BullQueue(name, { connection: olderRedis });
    const stop = new AbortController();
    const ack = (status: number) =>
      Promise.resolve({
        outcome: 'ack' as const,
        attempt: {
          record: { attempt: 1, startedAt: new Date().toISOString(), durationMs: 1, status },
        },
      });
    try {
      const fresh = (await queue.enqueue(queueRequest('fn'), { freshCallId: true })).callId;
      const job = await redis.hgetall(`bull:${name}:${fresh}`);
      assert.deepEqual(Object.keys(JSON.parse(job.data ?? '{}') as object), ['request']);
      const opts = JSON.parse(job.opts ?? '{}') as Record<string, unknown>;
      assert.ok(!('removeOnComplete' in opts) && !('removeOnFail' in opts), job.opts);
      // As fnbus queued a call before: its progress in the data (an attempt made), its removal
      // in its options.
      const old = queueRequest('fn');
      const oldId = old.Header['X-Call-Id']?.[0] ?? '';
      const now = Date.now();
      const attempt = { attempt: 1, startedAt: new Date(now).toISOString(), durationMs: 5 };
      await redis.zadd(`fnbus:${name}:live:fn`, now, oldId);
      await older.add(
        'fn',
        {
          request: old,
          state: 'queued',
          attempts: [{ ...attempt, status: 503 }],
          queuedAt: now,
          priorAttempts: 0,
          updatedAt: now,
          nextAttemptAt: now,
          lastStatus: 503,
          settledStarts: 1,
        },
        {
          jobId: oldId,
          timestamp: now,
          removeOnComplete: { age: 1 },
          removeOnFail: true,
          stackTraceLimit: 0,
        },
      );
      const dead = (await queue.enqueue(queueRequest('dies'))).callId;
      const told = new Map<string, number>();
      const consuming = queue.consume(
        (req, delivery) => {
          told.set(delivery.callId, delivery.attempts.length);
          return req.Function === 'dies'
            ? Promise.resolve({ outcome: 'dead-letter' as const, reason: 'gave up' })
            : ack(200);
        },
        { concurrency: 4 },
        stop.signal,
      );
      await waitFor(() => told.size === 3, { timeoutMs: 10_000, what: 'the three calls run' });
      assert.equal(told.get(oldId), 1, "the older call's attempt is told");
      assert.equal(told.get(fresh), 0);
      await waitFor(async () => (await queue.status(oldId))?.state === 'succeeded', {
        timeoutMs: 5000,
        what: 'the older call succeeded',
      });
      const record = await queue.status(oldId);
      assert.deepEqual(
        record?.attempts.map((a) => a.status),
        [503, 200],
      );
      assert.equal(record?.enqueuedAt, new Date(now).toISOString());
      const freshRecord = await queue.status(fresh);
      assert.equal(freshRecord?.state, 'succeeded');
      assert.equal(freshRecord?.lastStatus, 200);
      assert.equal(freshRecord?.attempts.length, 1);
      // A dead letter leaves BullMQ (fnbus keeps it); stats count nothing live.
      await waitFor(async () => (await queue.status(dead))?.state === 'dead-lettered', {
        timeoutMs: 5000,
        what: 'the dead letter',
      });
      await waitFor(async () => (await redis.exists(`bull:${name}:${dead}`)) === 0, {
        timeoutMs: 5000,
        what: "the dead letter's job to leave BullMQ",
      });
      assert.deepEqual(
        Object.entries(await queue.stats()).map(([fn, s]) => [fn, s.queued + s.running]),
        [['dies', 0]],
      );
      // Past the retention, a later completion removes the finished jobs, new and older alike.
      await waitFor(
        async () => {
          await queue.enqueue(queueRequest('later'), { freshCallId: true });
          return (await redis.exists(`bull:${name}:${fresh}`, `bull:${name}:${oldId}`)) === 0;
        },
        { timeoutMs: 10_000, what: 'finished jobs removed after the retention' },
      );
      stop.abort();
      await consuming;
    } finally {
      stop.abort();
      redis.disconnect();
      await older.close();
      olderRedis.disconnect();
      await queue.close();
    }
  });

  it('queues a call once when enqueues race with one Idempotency-Key or call id', async () => {
    const queue = new BullmqQueue({ url: server.url, name: randomName() });
    try {
      const sameKey = await Promise.all(
        Array.from({ length: 8 }, () => queue.enqueue(queueRequest('fn'), { idempotencyKey: 'k' })),
      );
      assert.equal(new Set(sameKey.map((got) => got.callId)).size, 1);
      assert.equal(sameKey.filter((got) => !got.duplicate).length, 1);

      const req = queueRequest('fn');
      const sameId = await Promise.allSettled(Array.from({ length: 8 }, () => queue.enqueue(req)));
      assert.equal(sameId.filter((got) => got.status === 'fulfilled').length, 1);
      for (const got of sameId) {
        if (got.status === 'rejected') assert.ok(got.reason instanceof ConflictError);
      }
      assert.equal((await queue.stats()).fn?.queued, 2);
    } finally {
      await queue.close();
    }
  });

  it('survives a Redis kill and restart under load: every accepted call runs', async () => {
    const queue = new BullmqQueue({ url: server.url, name: randomName(), leaseMs: 2000 });
    const runs = new Map<string, number>();
    const stop = new AbortController();
    const consuming = queue.consume(
      async (_req, delivery) => {
        runs.set(delivery.callId, (runs.get(delivery.callId) ?? 0) + 1);
        await new Promise((resolve) => setTimeout(resolve, 5));
        return {
          outcome: 'ack',
          attempt: {
            record: { attempt: 1, startedAt: new Date().toISOString(), durationMs: 5, status: 200 },
          },
        };
      },
      { concurrency: 8 },
      stop.signal,
    );
    const accepted: string[] = [];
    let refused = 0;
    let producing = true;
    // Four producers enqueue back to back, through the restart.
    const producers = Array.from({ length: 4 }, async () => {
      while (producing) {
        try {
          accepted.push((await queue.enqueue(queueRequest('restarted'))).callId);
        } catch {
          refused += 1;
        }
      }
    });
    try {
      await waitFor(() => accepted.length >= 100 && runs.size >= 50, {
        timeoutMs: 10_000,
        what: 'calls flowing before the restart',
      });
      await server.restart();
      const atRestart = accepted.length;
      await waitFor(() => accepted.length >= atRestart + 200, {
        timeoutMs: 30_000,
        what: 'enqueues to carry on after the restart',
      });
      producing = false;
      await Promise.all(producers);
      await waitFor(() => accepted.every((id) => runs.has(id)), {
        timeoutMs: 30_000,
        what: `every accepted call to run (${accepted.length} accepted, ${refused} refused)`,
      });
      await waitFor(
        async () => {
          const states = await Promise.all(accepted.map((id) => queue.status(id)));
          return states.every((record) => record?.state === 'succeeded');
        },
        { timeoutMs: 15_000, what: 'every accepted call to be recorded succeeded' },
      );
      assert.equal((await queue.stats()).restarted?.queued ?? 0, 0);
    } finally {
      producing = false;
      await Promise.all(producers);
      stop.abort();
      await consuming;
      await queue.close();
    }
  });
});
