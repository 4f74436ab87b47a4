import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { CallRecord } from '../../core/queue.js';
import { openQueue } from '../../queue/open-queue.js';
import { request } from '../helpers/http.js';
import { ready, startHub, stopHub, systemAuth, writeTallyStack } from '../helpers/hub.js';
import { startNats, startRedis, type RunningServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, makeTempDir } from '../helpers/watchdog.js';

/** Past undici's 128 pool slots: before fnbus kept paths raw, ~13 of these stopped the worker. */
const badCalls = 200;

const tallied = (file: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];

for (const backend of ['local', 'redis', 'nats'] as const) {
  describe(`fnbus up on the ${backend} queue: bad calls never stop the async path`, () => {
    let server: RunningServer | undefined;
    after(() => server?.stop());

    it(`runs good calls promptly after ${badCalls} encoded paths, and across a restart with unsendable calls queued`, async (t) => {
      if (backend === 'redis') server = await startRedis();
      if (backend === 'nats') server = await startNats();
      const queueArgs = server ? ['--queue', server.url] : [];
      const dir = makeTempDir(`fnbus-unsendable-${backend}-`);
      const state = join(dir, 'state');
      const tally = join(dir, 'tally.txt');
      const stack = writeTallyStack(dir, tally, 0, [
        '  echo:',
        '    image: fnbus/echo',
        `    fprocess: node ${fixture('node-http-server.cjs')}`,
        '    environment:',
        '      mode: http',
      ]);
      const env = { initial_retry_wait: '50ms', max_retry_wait: '100ms', max_retry_attempts: '2' };
      let hub = await startHub(['-f', stack, ...queueArgs], state, env);
      t.after(() => stopHub(hub.hub));
      await ready(hub.url, 'echo');
      await ready(hub.url, 'tally');

      /** Tally calls, submit to run: they must not wait behind the bad ones. */
      const goodCallsMs = async (count: number) => {
        const startedAt = Date.now();
        const ids: string[] = [];
        for (let i = 0; i < count; i++) {
          const res = await request(`${hub.url}/async-function/tally`, { method: 'POST' });
          assert.equal(res.status, 202, res.text);
          ids.push(String(res.headers['x-call-id']));
        }
        await waitFor(() => ids.every((id) => tallied(tally).includes(id)), {
          timeoutMs: 10_000,
          what: 'the good calls to run',
        });
        return Date.now() - startedAt;
      };

      const encoded: string[] = [];
      for (let i = 0; i < badCalls; i++) {
        const res = await request(`${hub.url}/async-function/echo/a%20b?n=${i}`, {
          method: 'POST',
          body: 'x',
        });
        assert.equal(res.status, 202, res.text);
        encoded.push(String(res.headers['x-call-id']));
      }
      const first = await goodCallsMs(5);
      const last = encoded.at(-1) ?? '';
      await waitFor(
        async () => {
          const res = await request(`${hub.url}/system/calls/${last}`, { headers: systemAuth });
          return (JSON.parse(res.text) as CallRecord).state === 'succeeded';
        },
        { timeoutMs: 20_000, what: 'the encoded calls to run' },
      );

      const letter = await request(`${hub.url}/system/dead-letters`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...systemAuth },
        body: JSON.stringify({
          function: 'echo',
          headers: { 'X-Bad': 'a\r\nInjected: 1' },
          attempts: [],
          reason: 'x',
        }),
      });
      assert.equal(letter.status, 400);
      assert.match(letter.text, /header X-Bad/);

      // Stopped, calls no request can carry are queued (as fnbus stored them before it
      // checked): the restarted hub gives them up at once and goes on.
      await stopHub(hub.hub);
      const queue = await openQueue(server?.url, state);
      const unsendable: string[] = [];
      for (let i = 0; i < badCalls; i++) {
        const { callId } = await queue.enqueue({
          Header: { 'X-Call-Id': [randomUUID()] },
          Host: '',
          Body: '',
          Method: 'POST',
          Path: '/a b',
          QueryString: '',
          Function: 'echo',
        });
        unsendable.push(callId);
      }
      await queue.close();
      hub = await startHub(queueArgs, state, env);
      await ready(hub.url, 'tally');
      const restarted = await goodCallsMs(5);
      for (const id of [unsendable[0], unsendable.at(-1)]) {
        const record = await waitFor(
          async () => {
            const res = await request(`${hub.url}/system/calls/${id}`, { headers: systemAuth });
            const got = JSON.parse(res.text) as CallRecord;
            return got.state === 'dead-lettered' && got;
          },
          { timeoutMs: 20_000, what: `unsendable call ${id} to be given up` },
        );
        assert.equal(record.attempts.length, 0);
        assert.match(record.reason ?? '', /cannot be sent.*path "\/a b"/);
      }
      t.diagnostic(
        `${backend}: 5 good calls in ${first} ms after ${badCalls} encoded paths; ` +
          `${restarted} ms after a restart with ${badCalls} unsendable calls queued`,
      );
    });
  });
}
