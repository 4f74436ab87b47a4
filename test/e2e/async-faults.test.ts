import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCli } from '../helpers/cli.js';
import { freePort, request } from '../helpers/http.js';
import { ready, startHub, stopHub, writeTallyStack, type RunningHub } from '../helpers/hub.js';
import { startNats, startRedis, type RunningServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';

const lines = (file: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];

/** Submits `count` async calls; their ids. */
async function submit(url: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await request(`${url}/async-function/tally`, { method: 'POST', body: `${i}` });
    assert.equal(res.status, 202, res.text);
    ids.push(String(res.headers['x-call-id']));
  }
  return ids;
}

/** Until every accepted id has run; how many ran more than once. */
async function everyRun(tally: string, accepted: string[]): Promise<number> {
  const runs = await waitFor(
    () => {
      const ran = lines(tally);
      return accepted.every((id) => ran.includes(id)) && ran;
    },
    { timeoutMs: 60_000, intervalMs: 100, what: 'every accepted call to have run' },
  );
  return runs.length - new Set(runs).size;
}

for (const backend of ['redis', 'nats'] as const) {
  describe(`async faults on ${backend === 'redis' ? 'BullMQ (Redis)' : 'NATS JetStream'}`, () => {
    let server: RunningServer;
    let hub: RunningHub;
    let dir: string;
    let tally: string;
    // A killed worker's calls go to another after 2 s.
    const env = { ack_wait: '2s', max_inflight: '4' };

    before(async () => {
      server = backend === 'redis' ? await startRedis() : await startNats();
      dir = makeTempDir(`fnbus-faults-${backend}-`);
      tally = join(dir, 'tally.txt');
      hub = await startHub(
        ['-f', writeTallyStack(dir, tally, 0.1), '--queue', server.url],
        join(dir, 'state'),
        env,
      );
      await ready(hub.url, 'tally');
    });
    after(async () => {
      await stopHub(hub.hub);
      await server.stop();
    });

    it('runs every accepted call when a worker is killed with SIGKILL mid-way', async (t) => {
      const worker = startCli(['queue-worker', '--queue', server.url, '--gateway', hub.url], {
        ...env,
        metrics_port: String(await freePort()),
      });
      await waitFor(() => worker.stdout().includes('queue worker running'), {
        timeoutMs: 10_000,
        what: `the queue worker to start (${worker.stderr()})`,
      });
      const before = lines(tally).length;
      const accepted = await submit(hub.url, 40);
      await waitFor(() => lines(tally).length >= before + 8, { what: 'some calls to run' });
      const exited = once(worker.child, 'exit');
      worker.child.kill('SIGKILL');
      await exited;
      const duplicates = await everyRun(tally, accepted);
      t.diagnostic(`accepted ${accepted.length}, lost 0, run twice ${duplicates}`);
      assert.ok(duplicates <= 8, `only calls in flight ran twice: ${duplicates}`);
    });

    it(`carries on when ${backend === 'redis' ? 'redis-server' : 'nats-server'} is restarted under load`, async (t) => {
      const accepted = await submit(hub.url, 20);
      await server.restart();
      // The gateway takes calls again once the backend is back.
      const after = await waitFor(
        async () => {
          const res = await request(`${hub.url}/async-function/tally`, {
            method: 'POST',
            body: 'x',
          });
          return res.status === 202 && String(res.headers['x-call-id']);
        },
        { timeoutMs: 20_000, intervalMs: 200, what: 'the gateway to queue again' },
      );
      accepted.push(after, ...(await submit(hub.url, 20)));
      const duplicates = await everyRun(tally, accepted);
      t.diagnostic(`accepted ${accepted.length}, lost 0, run twice ${duplicates}`);
    });
  });
}
