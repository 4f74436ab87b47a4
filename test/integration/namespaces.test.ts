import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ConflictError, NotFoundError } from '../../core/errors.js';
import { FaasProvider } from '../../deploy/faas-provider/faas-provider.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { runCli } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';
import { randomName } from './provider-contract.js';

const json = { 'Content-Type': 'application/json' };

describe('namespaces (process provider, through the gateway)', () => {
  const stateDir = makeTempDir('fnbus-namespaces-');
  let provider: ProcessProvider;
  let gateway: ReturnType<typeof buildGateway>;
  let url: string;
  const staging = randomName('staging');

  const open = async () => {
    provider = new ProcessProvider({ stateDir, drainDelayMs: 0 });
    await provider.start();
    gateway = buildGateway({ provider, config: readConfig({ basic_auth: 'false' }) });
    await gateway.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
  };
  const close = async () => {
    await gateway.close();
    await provider.close();
  };
  before(open);
  after(close);

  const send = (method: string, path: string, body?: unknown) =>
    request(`${url}${path}`, {
      method,
      headers: json,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  /** A function that answers with the value of its WHO variable. */
  const deployWho = (namespace: string | undefined, who: string) =>
    send('POST', '/system/functions', {
      service: 'who',
      image: 'fnbus/who',
      envProcess: 'printenv WHO',
      envVars: { WHO: who },
      ...(namespace ? { namespace } : {}),
    });
  const readyIn = (namespace: string) =>
    waitFor(async () => ((await provider.get('who', namespace))?.availableReplicas ?? 0) > 0, {
      timeoutMs: 15_000,
      what: `who in ${namespace} to be ready`,
    });

  it('creates, describes, relabels and lists namespaces, as faas-cli sends them', async () => {
    assert.deepEqual(JSON.parse((await send('GET', '/system/namespaces')).text), ['openfaas-fn']);
    // faas-cli posts to /system/namespace/ with the name in the body (and fields of later versions).
    const created = await send('POST', '/system/namespace/', {
      name: staging,
      labels: { team: 'a' },
      futureField: true,
    });
    assert.equal(created.status, 201, created.text);
    assert.equal((await send('POST', '/system/namespace/', { name: staging })).status, 409);
    assert.equal((await send('POST', '/system/namespace/', { name: 'Not_A_Label' })).status, 400);
    assert.deepEqual(JSON.parse((await send('GET', `/system/namespace/${staging}`)).text), {
      name: staging,
      labels: { team: 'a' },
    });
    const updated = await send('PUT', `/system/namespace/${staging}`, {
      name: staging,
      annotations: { owner: 'b' },
    });
    assert.equal(updated.status, 202, updated.text);
    assert.deepEqual(JSON.parse((await send('GET', `/system/namespace/${staging}`)).text), {
      name: staging,
      annotations: { owner: 'b' },
    });
    assert.equal((await send('GET', '/system/namespace/nowhere')).status, 404);
    assert.deepEqual(JSON.parse((await send('GET', '/system/namespaces')).text), [
      'openfaas-fn',
      staging,
    ]);
    // A deployment to a namespace that does not exist is refused, saying so.
    const lost = await deployWho('nowhere', 'x');
    assert.equal(lost.status, 400);
    assert.match(lost.text, /namespace "nowhere" does not exist/);
  });

  it('keeps functions of two namespaces apart: same name, two functions', async () => {
    assert.equal((await deployWho(undefined, 'default')).status, 202);
    assert.equal((await deployWho(staging, 'staging')).status, 202);
    assert.equal((await deployWho(staging, 'again')).status, 409);
    await readyIn('openfaas-fn');
    await readyIn(staging);

    const call = (name: string) => request(`${url}/function/${name}`, { method: 'POST' });
    assert.equal((await call('who')).text.trim(), 'default');
    assert.equal((await call(`who.${staging}`)).text.trim(), 'staging');
    assert.equal((await call('who.openfaas-fn')).text.trim(), 'default');

    const listed = (namespace: string) =>
      send('GET', `/system/functions?namespace=${namespace}`).then(
        (res) => JSON.parse(res.text) as { name: string; namespace: string; envVars: object }[],
      );
    const inStaging = await listed(staging);
    assert.deepEqual(
      inStaging.map((fn) => [fn.name, fn.namespace]),
      [['who', staging]],
    );
    assert.deepEqual(inStaging[0]?.envVars, { WHO: 'staging' });
    assert.deepEqual(
      (await listed('openfaas-fn')).map((fn) => [fn.name, fn.namespace]),
      [['who', 'openfaas-fn']],
    );

    // Scaling one leaves the other as it was.
    const scaled = await send('POST', `/system/scale-function/who?namespace=${staging}`, {
      serviceName: 'who',
      replicas: 2,
    });
    assert.equal(scaled.status, 202, scaled.text);
    assert.equal((await provider.get('who', staging))?.replicas, 2);
    assert.equal((await provider.get('who'))?.replicas, 1);

    // Secrets too: one in staging is not in the default namespace.
    const secret = await send('POST', `/system/secrets?namespace=${staging}`, {
      name: 'token',
      value: 'staging-only',
    });
    assert.equal(secret.status, 201, secret.text);
    assert.deepEqual(JSON.parse((await send('GET', `/system/secrets?namespace=${staging}`)).text), [
      { name: 'token', namespace: staging },
    ]);
    assert.deepEqual(JSON.parse((await send('GET', '/system/secrets')).text), []);
  });

  it('comes back after a restart, namespaces and functions alike', async () => {
    await close();
    // A removal a stop cut short: its folder is finished off at the next start.
    const leftover = join(stateDir, 'namespaces', '.removing-old-1a2b3c4d');
    mkdirSync(join(leftover, 'secrets'), { recursive: true });
    writeFileSync(join(leftover, 'namespace.json'), '{"name":"old"}');
    await open();
    assert.ok(!existsSync(leftover), 'the half-removed folder is gone');
    assert.deepEqual(await provider.namespaces(), ['openfaas-fn', staging]);
    await readyIn(staging);
    assert.equal((await provider.get('who', staging))?.envVars?.WHO, 'staging');
    assert.equal((await provider.get('who'))?.envVars?.WHO, 'default');
  });

  it('removes a namespace once it holds nothing, never the default', async () => {
    assert.equal(
      (await send('DELETE', `/system/namespace/${staging}`, { name: staging })).status,
      409,
    );
    assert.equal((await send('DELETE', '/system/namespace/openfaas-fn', {})).status, 409);
    const removed = await send('DELETE', `/system/functions?namespace=${staging}`, {
      functionName: 'who',
    });
    assert.equal(removed.status, 202, removed.text);
    assert.ok(await provider.get('who'), 'the default namespace keeps its own');
    assert.equal(
      (await send('DELETE', `/system/namespace/${staging}`, { name: staging })).status,
      202,
    );
    assert.equal((await send('GET', `/system/namespace/${staging}`)).status, 404);
    assert.deepEqual(await provider.namespaces(), ['openfaas-fn']);
  });

  it('takes changes to one namespace sent at once: no 5xx, and no function or folder outlives it', async () => {
    const folders = () => readdirSync(join(stateDir, 'namespaces'));
    for (let round = 0; round < 12; round += 1) {
      const ns = randomName('race');
      const answers = await Promise.all([
        send('POST', '/system/namespace/', { name: ns }),
        send('PUT', `/system/namespace/${ns}`, { name: ns, labels: { round: String(round) } }),
        send('POST', '/system/secrets', { name: 'key', value: 'v', namespace: ns }),
        deployWho(ns, 'race'),
        send('DELETE', `/system/namespace/${ns}`, { name: ns }),
        send('POST', '/system/namespace/', { name: ns }),
        send('DELETE', `/system/namespace/${ns}`, { name: ns }),
      ]);
      for (const answer of answers)
        assert.ok(answer.status < 500, `${answer.status} ${answer.text}`);
      const exists = (await send('GET', `/system/namespace/${ns}`)).status === 200;
      assert.equal(exists, (await provider.namespaces()).includes(ns));
      assert.equal(exists, folders().includes(ns), `${ns}: a folder only for a namespace`);
      if (!exists) {
        assert.equal(await provider.get('who', ns), undefined, 'no function in a namespace gone');
        continue;
      }
      if (await provider.get('who', ns)) {
        assert.equal(
          (await send('DELETE', `/system/functions?namespace=${ns}`, { functionName: 'who' }))
            .status,
          202,
        );
      }
      assert.equal((await send('DELETE', `/system/namespace/${ns}`, { name: ns })).status, 202);
      assert.ok(!folders().includes(ns));
    }
    assert.deepEqual(
      folders().filter((name) => name.startsWith('.')),
      [],
      'no folder left half-removed',
    );
  });

  it('fnbus namespace create, list, get, update and remove', async () => {
    const env = { FNBUS_GATEWAY: url };
    const name = randomName('cli');
    const created = await runCli(['namespace', 'create', name, '-l', 'team=a'], env);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, `created namespace ${name}\n`);
    assert.match((await runCli(['namespace', 'list'], env)).stdout, new RegExp(`^${name}$`, 'm'));
    const updated = await runCli(['namespace', 'update', name, '--annotation', 'owner=b'], env);
    assert.equal(updated.code, 0, updated.stderr);
    const shown = await runCli(['namespace', 'get', name], env);
    assert.deepEqual(JSON.parse(shown.stdout), { name, annotations: { owner: 'b' } });
    const again = await runCli(['namespace', 'create', name], env);
    assert.equal(again.code, 1);
    assert.equal(again.stderr.trim().split('\n').length, 1, again.stderr);
    const removed = await runCli(['ns', 'rm', name], env);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal((await runCli(['namespace', 'get', name], env)).code, 1);
  });

  it('is forwarded by the http provider', async () => {
    const remote = new FaasProvider({ url });
    const name = randomName('ns');
    try {
      await remote.namespaceStore.create({ name, labels: { via: 'http' } });
      await assert.rejects(remote.namespaceStore.create({ name }), ConflictError);
      assert.deepEqual(await remote.namespaceStore.get(name), { name, labels: { via: 'http' } });
      assert.ok((await remote.namespaces()).includes(name));
      await remote.namespaceStore.update({ name, labels: { via: 'put' } });
      assert.deepEqual((await provider.namespaceStore.get(name))?.labels, { via: 'put' });
      await remote.deploy({
        service: 'who',
        image: 'x',
        envProcess: 'printenv WHO',
        namespace: name,
      });
      assert.deepEqual(
        (await remote.list(name)).map((fn) => fn.namespace),
        [name],
      );
      await assert.rejects(remote.namespaceStore.remove(name), ConflictError);
      await remote.remove('who', name);
      await remote.namespaceStore.remove(name);
      assert.equal(await remote.namespaceStore.get(name), undefined);
      await assert.rejects(remote.namespaceStore.remove(name), NotFoundError);
    } finally {
      await remote.close();
    }
  });
});
