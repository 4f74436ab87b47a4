import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UnavailableError } from '../../core/errors.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { ScaleFromZero } from '../../gateway/scale-from-zero.js';
import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, fprocess, makeTempDir } from '../helpers/watchdog.js';

const uniqueName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** The provider as the gateway sees it, counting the calls made to each of its methods. */
function counting(provider: ProcessProvider): {
  provider: ProcessProvider;
  count: (method: string) => number;
} {
  const counts = new Map<string, number>();
  const proxy = new Proxy(provider, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        counts.set(String(key), (counts.get(String(key)) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { provider: proxy, count: (method) => counts.get(method) ?? 0 };
}

/**
 * An http-mode function deployed at zero replicas whose process listens only once `gate` exists:
 * the test decides when a woken replica gets ready.
 */
function gatedFunction(name: string, gate: string) {
  const script = `while [ ! -e "$GATE" ]; do sleep 0.02; done; exec node "$SERVER"`;
  return {
    service: name,
    image: 'fnbus/gated',
    envProcess: fprocess('sh', '-c', script),
    envVars: { mode: 'http', GATE: gate, SERVER: fixture('node-http-server.cjs') },
    labels: { 'com.openfaas.scale.min': '0' },
  };
}

describe('scale from zero: one wait per function', () => {
  let real: ProcessProvider;
  let counted: ReturnType<typeof counting>;
  let gateway: ReturnType<typeof buildGateway>;
  let url: string;

  before(async () => {
    real = new ProcessProvider({ stateDir: makeTempDir('fnbus-zero-'), drainDelayMs: 0 });
    await real.start();
    counted = counting(real);
    gateway = buildGateway({
      provider: counted.provider,
      config: readConfig({ basic_auth: 'false' }),
    });
    await gateway.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await gateway.close();
    await real.close();
  });

  it('holds many calls on one loop, and answers them all once the replica is ready', async () => {
    const name = uniqueName('gated');
    const gate = join(makeTempDir('fnbus-gate-'), 'open');
    await real.deploy(gatedFunction(name, gate));
    assert.equal((await real.get(name))?.replicas, 0);
    const polls = () => counted.count('resolve') + counted.count('resolveLocal');
    const before = { polls: polls(), gets: counted.count('get') };

    const held = 50;
    const calls = Array.from({ length: held }, (_, i) =>
      request(`${url}/function/${name}/echo?raw`, { method: 'POST', body: `call ${i}` }),
    );
    // Every call has looked once for a ready replica and is held, and the wait has gone on
    // for a few looks more, before the replica may get ready.
    await waitFor(() => polls() - before.polls >= 2 * held + 6, {
      timeoutMs: 10_000,
      what: 'the calls to be held',
    });
    writeFileSync(gate, '');
    const answers = await Promise.all(calls);
    assert.deepEqual(
      answers.map((answer) => [answer.status, answer.text]),
      answers.map((_, i) => [200, `call ${i}`]),
    );
    assert.equal((await real.get(name))?.replicas, 1, 'woken to its minimum, at least 1');
    // One lookup of the function and one scale for all of them; the looks while held do not
    // grow with the calls: each call looks twice before it is held and once when released.
    assert.equal(counted.count('get') - before.gets, 1);
    assert.equal(counted.count('scale'), 1, 'one scale for all of them');
    const looks = polls() - before.polls;
    assert.ok(looks <= 3 * held + 40, `${looks} looks for a replica for ${held} held calls`);
  });

  it('fails every held call at once when no replica gets ready in time, with one loop', async () => {
    const name = uniqueName('never');
    const gate = join(makeTempDir('fnbus-gate-'), 'never-opened');
    await real.deploy(gatedFunction(name, gate));
    const waits = new ScaleFromZero(counted.provider, { waitMs: 600, maxHeld: 100 });
    const resolvesBefore = counted.count('resolve');
    const started = Date.now();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, () => waits.wait(name, undefined)),
    );
    const elapsed = Date.now() - started;
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      assert.ok(outcome.reason instanceof UnavailableError, String(outcome.reason));
    }
    assert.ok(elapsed >= 600 && elapsed < 5000, `failed after ${elapsed} ms`);
    // A doubling pause from 2 ms to 50 ms, jittered (between half and all of each step): 16 to
    // 28 looks in 600 ms, not 20 calls × 60.
    const looks = counted.count('resolve') - resolvesBefore;
    assert.ok(looks >= 5 && looks <= 30, `${looks} looks in ${elapsed} ms`);
    assert.equal(waits.held, 0);
  });

  it('refuses more held calls than maxHeld at once, and says a function is unknown', async () => {
    const name = uniqueName('never');
    const gate = join(makeTempDir('fnbus-gate-'), 'never-opened');
    await real.deploy(gatedFunction(name, gate));
    const waits = new ScaleFromZero(counted.provider, { waitMs: 300, maxHeld: 2 });
    const first = Promise.allSettled([waits.wait(name, undefined), waits.wait(name, undefined)]);
    await assert.rejects(waits.wait(name, undefined), /too many calls waiting/);
    await first;
    await assert.rejects(waits.wait('no-such-function', undefined), { status: 404 });
  });
});
