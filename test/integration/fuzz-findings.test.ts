import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { LocalQueue } from '../../queue/local/local-queue.js';
import { baseProvider } from '../helpers/providers.js';
import { makeTempDir } from '../helpers/watchdog.js';

/** What `npm run fuzz` found, kept found. */
describe('fuzzing findings', () => {
  let provider: ProcessProvider;
  let queue: LocalQueue;
  let gateway: ReturnType<typeof buildGateway>;

  before(async () => {
    const dir = makeTempDir('fnbus-fuzz-findings-');
    provider = new ProcessProvider({ stateDir: join(dir, 'state') });
    await provider.start();
    queue = new LocalQueue({ file: join(dir, 'q.db') });
    gateway = buildGateway({
      provider: baseProvider(provider),
      config: readConfig({ basic_auth: 'false' }),
      queue,
    });
  });
  after(async () => {
    await gateway.close();
    await queue.close();
    await provider.close();
  });

  const bury = (fn: string) =>
    gateway.inject({
      method: 'POST',
      url: '/system/dead-letters',
      payload: { function: fn, attempts: [], reason: 'failed elsewhere' },
    });

  it('refuses a dead letter for a name no function can have (__proto__ polluted the tallies)', async () => {
    // A letter for `__proto__` made the queue's per-function tally write into Object.prototype:
    // every later scrape of the worker's metrics threw, and the worker thread went down.
    for (const name of ['__proto__', 'Echo', 'a b', '', 'a..b', 'x'.repeat(128)]) {
      const res = await bury(name);
      assert.equal(res.statusCode, 400, `${JSON.stringify(name)}: ${res.body}`);
    }
    for (const name of ['echo', 'echo.openfaas-fn', '0']) {
      assert.equal((await bury(name)).statusCode, 201, name);
    }
    const stats = await queue.stats();
    // `echo.openfaas-fn` is `echo` in the default namespace: its letters are kept under one name.
    assert.deepEqual(Object.keys(stats).sort(), ['0', 'echo']);
    assert.equal(stats.echo?.deadLettered, 2);
    assert.equal(({} as Record<string, unknown>).deadLettered, undefined);
  });

  it('queues a call whose headers are named after Object.prototype members', async () => {
    await provider.deploy({ service: 'constructor', image: 'fnbus/cat', envProcess: 'cat' });
    // Go's http.Header shape was built on a plain object: `constructor: x` pushed onto a function.
    const res = await gateway.inject({
      method: 'POST',
      url: '/async-function/constructor',
      headers: { constructor: 'x', __proto__: 'y', tostring: 'z', 'Content-Type': 'text/plain' },
      payload: 'hello',
    });
    assert.equal(res.statusCode, 202, res.body);
    const callId = res.headers['x-call-id'] as string;
    const record = await queue.status(callId);
    assert.equal(record?.state, 'queued');
    // A function named `constructor` (a valid name) has tallies of its own.
    const stats = await queue.stats();
    const name: string = 'constructor';
    assert.equal(stats[name]?.queued, 1);
    assert.equal(Object.getPrototypeOf(stats), null);
  });
});
