import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  ConflictError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from '../../core/errors.js';
import type { FunctionDeployment } from '../../core/function-types.js';
import type { LogMessage } from '../../core/log-types.js';
import type { Provider } from '../../core/provider.js';
import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

/** One provider under test, and what the suite needs to know to drive it. */
export interface ContractSubject {
  provider: Provider;
  /**
   * A deployment named `name` whose replicas answer a POST with its body (the classic `cat`
   * function) and log one line per call with its X-Call-Id (the watchdog's `log_callid=true`).
   */
  echoFunction(name: string): FunctionDeployment;
  /** Stops whatever the subject started. */
  close(): Promise<void>;
}

export interface ContractOptions {
  /** How long a replica may take to become ready; default 15s. */
  readyTimeoutMs?: number;
}

/** A function name no other test uses. */
export function randomName(prefix = 'fn'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/**
 * The provider contract (core/provider.ts): every provider (process, swarm, kubernetes) runs
 * these same tests. `makeSubject` is called once per test, for a fresh provider and state.
 */
export function providerContract(
  name: string,
  makeSubject: () => Promise<ContractSubject>,
  { readyTimeoutMs = 15_000 }: ContractOptions = {},
): void {
  describe(`Provider contract: ${name}`, () => {
    let subject: ContractSubject;
    let provider: Provider;

    beforeEach(async () => {
      subject = await makeSubject();
      provider = subject.provider;
    });
    afterEach(async () => {
      await subject.close();
    });

    const available = (fn: string, replicas: number) =>
      waitFor(
        async () => {
          const status = await provider.get(fn);
          return status?.availableReplicas === replicas && status;
        },
        {
          timeoutMs: readyTimeoutMs,
          intervalMs: 25,
          what: `${fn} to have ${replicas} available replicas`,
        },
      );

    const call = async (fn: string, body: string, headers: Record<string, string> = {}) => {
      // The URL as given: a remote provider's has a path (`/function/<name>/`).
      const base = await provider.resolve(fn);
      return request(base.href, { method: 'POST', body, headers });
    };

    it('describes itself', async () => {
      const info = await provider.info();
      assert.equal(typeof info.provider, 'string');
      assert.equal(typeof info.orchestration, 'string');
      assert.equal(typeof info.version.release, 'string');
      if (provider.namespaces) {
        const namespaces = await provider.namespaces();
        assert.ok(namespaces.length >= 1);
      }
    });

    it('deploys a function that list and get show, with what it was given', async () => {
      const fn = randomName();
      const spec: FunctionDeployment = {
        ...subject.echoFunction(fn),
        labels: { team: 'a' },
        annotations: { topic: 'orders' },
        limits: { memory: '128M' },
      };
      spec.envVars = { ...spec.envVars, GREETING: 'hello' };
      await provider.deploy(spec);

      const listed = await provider.list();
      assert.ok(listed.some((status) => status.name === fn));
      const status = await provider.get(fn);
      assert.ok(status);
      assert.equal(status.name, fn);
      assert.equal(status.image, spec.image);
      assert.equal(status.envVars?.GREETING, 'hello');
      // A remote OpenFaaS provider (faas-netes, a gateway) labels each function faas_function.
      const { faas_function: functionLabel, ...labels } = status.labels ?? {};
      assert.deepEqual(labels, { team: 'a' });
      if (functionLabel !== undefined) assert.equal(functionLabel, fn);
      assert.equal(status.annotations?.topic, 'orders');
      assert.deepEqual(status.limits, { memory: '128M' });
      assert.equal(status.replicas, 1);
      assert.equal(typeof status.namespace, 'string');
      assert.ok(!Number.isNaN(Date.parse(status.createdAt)), status.createdAt);
      assert.match(status.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
      assert.equal(status.invocationCount, undefined);
      await available(fn, 1);
    });

    it('resolves a ready replica that answers a real call', async () => {
      const fn = randomName();
      await provider.deploy(subject.echoFunction(fn));
      await available(fn, 1);
      const response = await call(fn, 'hello through the provider');
      assert.equal(response.status, 200);
      assert.equal(response.text, 'hello through the provider');
    });

    it('updates a function and keeps its replica count', async () => {
      const fn = randomName();
      await provider.deploy(subject.echoFunction(fn));
      await provider.scale(fn, 2);
      await available(fn, 2);
      const spec = subject.echoFunction(fn);
      spec.envVars = { ...spec.envVars, VERSION: '2' };
      await provider.update(spec);
      const status = await provider.get(fn);
      assert.equal(status?.envVars?.VERSION, '2');
      assert.equal(status?.replicas, 2);
      await available(fn, 2);
      assert.equal((await call(fn, 'after update')).text, 'after update');
    });

    it('scales up, down and to zero; availableReplicas follows', async () => {
      const fn = randomName();
      await provider.deploy(subject.echoFunction(fn));
      await available(fn, 1);
      await provider.scale(fn, 3);
      assert.equal((await provider.get(fn))?.replicas, 3);
      await available(fn, 3);
      await provider.scale(fn, 1);
      await available(fn, 1);
      await provider.scale(fn, 0);
      await available(fn, 0);
      await assert.rejects(provider.resolve(fn), UnavailableError);
      await provider.scale(fn, 1);
      await available(fn, 1);
      assert.equal((await call(fn, 'back')).text, 'back');
    });

    it('removes a function', async () => {
      const fn = randomName();
      await provider.deploy(subject.echoFunction(fn));
      await available(fn, 1);
      await provider.remove(fn);
      assert.equal(await provider.get(fn), undefined);
      assert.ok(!(await provider.list()).some((status) => status.name === fn));
      await assert.rejects(provider.resolve(fn), NotFoundError);
      // The name is free again.
      await provider.deploy(subject.echoFunction(fn));
      await available(fn, 1);
    });

    it('serves logs: past lines, tail, since, instance, and follow until aborted', async (t) => {
      if (!provider.logs) {
        t.skip('this provider has no logs');
        return;
      }
      const logs = provider.logs.bind(provider);
      const fn = randomName();
      await provider.deploy(subject.echoFunction(fn));
      await available(fn, 1);
      const callId = randomName('call');
      assert.equal((await call(fn, 'x', { 'X-Call-Id': callId })).status, 200);

      const read = async (req: Parameters<typeof logs>[0]): Promise<LogMessage[]> => {
        const out: LogMessage[] = [];
        for await (const message of logs(req, AbortSignal.timeout(10_000))) out.push(message);
        return out;
      };
      const lines = await waitFor(
        async () => {
          const found = await read({ name: fn, follow: false });
          return found.some((message) => message.text.includes(callId)) && found;
        },
        { timeoutMs: 5000, what: 'the call to be logged' },
      );
      const line = lines.find((message) => message.text.includes(callId))!;
      assert.equal(line.name, fn);
      assert.equal(typeof line.namespace, 'string');
      assert.ok(line.instance);
      assert.ok(!Number.isNaN(Date.parse(line.timestamp)));

      assert.equal((await read({ name: fn, follow: false, tail: 1 })).length, 1);
      assert.deepEqual(
        await read({ name: fn, follow: false, since: new Date(Date.now() + 60_000) }),
        [],
      );
      const ofInstance = await read({ name: fn, follow: false, instance: line.instance });
      assert.ok(ofInstance.length > 0 && ofInstance.every((m) => m.instance === line.instance));
      assert.deepEqual(await read({ name: fn, follow: false, instance: 'no-such-instance' }), []);

      // Follow: lines written after the start arrive; aborting ends the stream.
      const controller = new AbortController();
      const next = randomName('call');
      const iterator = logs({ name: fn, follow: true, tail: 0 }, controller.signal)[
        Symbol.asyncIterator
      ]();
      const first = iterator.next();
      await call(fn, 'y', { 'X-Call-Id': next });
      let result = await first;
      while (!result.done && !result.value.text.includes(next)) result = await iterator.next();
      assert.equal(result.done, false, 'the followed stream got the new call');
      controller.abort();
      assert.equal((await iterator.next()).done, true);

      // Aborting while the stream waits for a line ends it too.
      const idle = new AbortController();
      const waiting = logs({ name: fn, follow: true, tail: 0 }, idle.signal)[
        Symbol.asyncIterator
      ]();
      const pending = waiting.next();
      idle.abort();
      assert.equal((await pending).done, true);
    });

    it('follows the logs of replicas that start after the stream began', async (t) => {
      if (!provider.logs) {
        t.skip('this provider has no logs');
        return;
      }
      const fn = randomName();
      await provider.deploy(subject.echoFunction(fn));
      await available(fn, 1);
      const controller = new AbortController();
      t.after(() => controller.abort());
      const instances = new Set<string>();
      const reading = (async () => {
        for await (const message of provider.logs!(
          { name: fn, follow: true, tail: 0 },
          controller.signal,
        )) {
          if (message.text.includes('follow-')) instances.add(message.instance);
        }
      })();
      await provider.scale(fn, 2);
      await available(fn, 2);
      // Calls spread over both replicas: the new one's lines reach the stream begun before it.
      await waitFor(
        async () => {
          await call(fn, 'z', { 'X-Call-Id': randomName('follow') });
          return instances.size === 2;
        },
        {
          timeoutMs: 20_000,
          intervalMs: 100,
          what: 'lines from both replicas in the followed stream',
        },
      );
      controller.abort();
      await reading;
    });

    it('rejects what it must reject', async () => {
      const fn = randomName();
      await provider.deploy(subject.echoFunction(fn));
      await assert.rejects(provider.deploy(subject.echoFunction(fn)), ConflictError);

      const unknown = randomName('missing');
      await assert.rejects(provider.update(subject.echoFunction(unknown)), NotFoundError);
      await assert.rejects(provider.remove(unknown), NotFoundError);
      await assert.rejects(provider.scale(unknown, 1), NotFoundError);
      await assert.rejects(provider.resolve(unknown), NotFoundError);
      assert.equal(await provider.get(unknown), undefined);
      if (provider.logs) {
        const logs = provider.logs({ name: unknown, follow: false }, AbortSignal.timeout(5000));
        await assert.rejects(logs[Symbol.asyncIterator]().next(), NotFoundError);
      }

      await assert.rejects(provider.deploy(subject.echoFunction('Bad_Name')), ValidationError);
      await assert.rejects(provider.deploy(subject.echoFunction('')), ValidationError);
      await assert.rejects(provider.deploy({ service: randomName(), image: '' }), ValidationError);
      await assert.rejects(provider.scale(fn, -1), ValidationError);
      await assert.rejects(provider.scale(fn, 1.5), ValidationError);
    });

    it('answers UnavailableError for a function with no replicas', async () => {
      const fn = randomName();
      await provider.deploy({
        ...subject.echoFunction(fn),
        annotations: { 'com.openfaas.scale.min': '0' },
      });
      const status = await provider.get(fn);
      assert.equal(status?.replicas, 0);
      assert.equal(status?.availableReplicas, 0);
      await assert.rejects(provider.resolve(fn), UnavailableError);
    });
  });
}
