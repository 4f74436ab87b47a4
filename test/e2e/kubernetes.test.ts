import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, type KubeConfig } from '@kubernetes/client-node';
import {
  dockerUnavailable,
  importBaseImage,
  startDocker,
  startRegistry,
  type RunningDocker,
  type RunningRegistry,
} from '../helpers/docker.js';
import { request } from '../helpers/http.js';
import { startHub, stopHub, systemAuth, type RunningHub } from '../helpers/hub.js';
import { clusterUnavailable, testNamespace, useCluster } from '../helpers/k8s.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir, repoRoot } from '../helpers/watchdog.js';
import { randomName } from '../integration/provider-contract.js';

const skip = clusterUnavailable() ?? dockerUnavailable();

let engine: RunningDocker | undefined;
let registry: RunningRegistry | undefined;
let kubeConfig: KubeConfig;
let namespace: { name: string; remove(): Promise<void> } | undefined;
let hub: RunningHub | undefined;
/** The image of the example stack's command functions, as pushed: for the functions deployed here. */
let shellImage: string;

const json = { 'Content-Type': 'application/json', ...systemAuth };

/** Until the function has `replicas` available replicas (and wants that many). */
function available(name: string, replicas: number, timeoutMs = 120_000) {
  return waitFor(
    async () => {
      const res = await request(`${hub!.url}/system/function/${name}`, { headers: systemAuth });
      if (res.status !== 200) return false;
      const status = JSON.parse(res.text) as { replicas: number; availableReplicas: number };
      return status.availableReplicas === replicas && status.replicas === replicas;
    },
    { timeoutMs, intervalMs: 250, what: `${name} at ${replicas} available replicas` },
  );
}

const deploy = (body: object, method = 'POST') =>
  request(`${hub!.url}/system/functions`, { method, headers: json, body: JSON.stringify(body) });

before(async () => {
  if (skip) return;
  const cluster = useCluster();
  [engine, registry] = await Promise.all([startDocker(), startRegistry()]);
  const [nodeBase, pythonBase] = [
    await importBaseImage(engine.docker, 'node'),
    await importBaseImage(engine.docker, 'python3'),
  ];
  ({ kubeConfig } = await cluster);
  namespace = await testNamespace(kubeConfig, randomName('e2e'));
  // The example stack as a user has it, built, pushed to the registry and deployed by fnbus up.
  const dir = makeTempDir('fnbus-k8s-example-');
  cpSync(join(repoRoot, 'examples'), dir, { recursive: true });
  shellImage = `${registry.address}/fnbus-example-shell:latest`;
  hub = await startHub(
    ['-f', join(dir, 'stack.yml'), '--provider', 'kubernetes://'],
    makeTempDir('fnbus-k8s-state-'),
    {
      KUBECONFIG: (await cluster).kubeconfigPath,
      DOCKER_HOST: engine.host,
      REGISTRY: `${registry.address}/`,
      SHELL_IMAGE: nodeBase,
      NODE_IMAGE: nodeBase,
      PYTHON_IMAGE: pythonBase,
      function_namespace: namespace.name,
    },
    undefined,
    300_000,
  );
});
after(async () => {
  if (hub) await stopHub(hub.hub);
  await namespace?.remove();
  await engine?.stop();
  await registry?.stop();
});

describe(
  'the example stack on Kubernetes, through fnbus up --provider kubernetes://',
  { skip },
  () => {
    it('builds, pushes and deploys every function, which answer sync calls through the gateway', async () => {
      assert.deepEqual((await registry!.catalog()).sort(), [
        'fnbus-example-shell',
        'hello-node',
        'hello-python',
        'orders',
      ]);
      for (const name of [
        'cat',
        'sha512sum',
        'hello-node',
        'hello-python',
        'orders',
        'every-minute',
      ]) {
        await available(name, 1);
      }
      const hash = await request(`${hub!.url}/function/sha512sum`, {
        method: 'POST',
        body: 'hello',
      });
      assert.match(hash.text, /^9b71d224bd62f378/);
      const node = await request(`${hub!.url}/function/hello-node`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{"a":1}',
      });
      assert.deepEqual(JSON.parse(node.text), { status: 'Received input: {"a":1}' });
      const python = await request(`${hub!.url}/function/hello-python`, {
        method: 'POST',
        body: 'x',
      });
      assert.equal(python.status, 200, python.text);
      // The pods run what the stack says, as faas-netes would run them.
      const apps = kubeConfig.makeApiClient(AppsV1Api);
      const deployment = await apps.readNamespacedDeployment({
        name: 'hello-node',
        namespace: namespace!.name,
      });
      assert.equal(deployment.metadata?.labels?.faas_function, 'hello-node');
      assert.equal(
        deployment.spec?.template.spec?.containers[0]?.image,
        `${registry!.address}/hello-node:latest`,
      );
    });

    it('runs async calls with a callback, and a webhook event through the connector', async (t) => {
      let callback: ((body: string) => void) | undefined;
      const received = new Promise<string>((resolve) => (callback = resolve));
      const receiver = createServer((req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          res.end();
          callback?.(body);
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      t.after(() => receiver.close());
      const port = (receiver.address() as { port: number }).port;
      const queued = await request(`${hub!.url}/async-function/cat`, {
        method: 'POST',
        headers: { 'X-Callback-Url': `http://127.0.0.1:${port}/done` },
        body: 'later',
      });
      assert.equal(queued.status, 202);
      assert.equal(await received, 'later');

      const event = await request(`${hub!.url}/webhook/orders`, {
        method: 'POST',
        headers: { 'Content-Type': 'text/plain' },
        body: 'order 7',
      });
      assert.equal(event.status, 202, event.text);
      const callId = event.headers['x-call-id'] as string;
      let last = '';
      const record = await waitFor(
        async () => {
          const res = await request(`${hub!.url}/system/calls/${callId}`, { headers: systemAuth });
          last = res.text;
          const call = JSON.parse(res.text) as { state: string };
          return call.state === 'succeeded' && call;
        },
        {
          timeoutMs: 30_000,
          intervalMs: 200,
          what: 'the webhook call to run',
          detail: () => `${event.text} ${last}`,
        },
      );
      assert.equal(record.state, 'succeeded');
    });

    it('spreads calls over 3 replicas, keeps every call through an update, and wakes from zero', async () => {
      const name = 'whoami';
      // Each pod answers with its own name.
      const spec = { service: name, image: shellImage, envProcess: 'cat /etc/hostname' };
      assert.equal((await deploy(spec)).status, 202);
      await available(name, 1);
      const scaled = await request(`${hub!.url}/system/scale-function/${name}`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ serviceName: name, replicas: 3 }),
      });
      assert.equal(scaled.status, 202);
      await available(name, 3);
      const pods = new Set<string>();
      for (let n = 0; n < 30; n++) {
        const res = await request(`${hub!.url}/function/${name}`, { method: 'POST', body: '' });
        assert.equal(res.status, 200);
        pods.add(res.text.trim());
      }
      assert.equal(pods.size, 3, [...pods].join(', '));

      // A rolling update with calls running: none is dropped.
      let calls = 0;
      const failures: string[] = [];
      let updating = true;
      const caller = (async () => {
        while (updating) {
          const res = await request(`${hub!.url}/function/${name}`, { method: 'POST', body: '' });
          calls++;
          if (res.status !== 200) failures.push(`${res.status} ${res.text}`);
        }
      })();
      assert.equal((await deploy({ ...spec, envVars: { VERSION: '2' } }, 'PUT')).status, 202);
      const apps = kubeConfig.makeApiClient(AppsV1Api);
      await waitFor(
        async () => {
          const d = await apps.readNamespacedDeployment({ name, namespace: namespace!.name });
          return (
            d.status?.updatedReplicas === 3 &&
            d.status.availableReplicas === 3 &&
            (d.status.replicas ?? 0) === 3
          );
        },
        { timeoutMs: 180_000, intervalMs: 250, what: 'the update to roll out' },
      );
      updating = false;
      await caller;
      assert.deepEqual(failures, [], `${failures.length} of ${calls} calls failed`);
      assert.ok(calls > 10, `${calls} calls during the update`);

      // To zero, and back on the next call.
      await request(`${hub!.url}/system/scale-function/${name}`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ serviceName: name, replicas: 0 }),
      });
      await available(name, 0);
      const woken = await request(`${hub!.url}/function/${name}`, { method: 'POST', body: '' });
      assert.equal(woken.status, 200, woken.text);

      // Removed: gone from the gateway and from the cluster.
      const removed = await request(`${hub!.url}/system/functions`, {
        method: 'DELETE',
        headers: json,
        body: JSON.stringify({ functionName: name }),
      });
      assert.equal(removed.status, 202);
      assert.equal((await request(`${hub!.url}/function/${name}`, { method: 'POST' })).status, 404);
      await assert.rejects(apps.readNamespacedDeployment({ name, namespace: namespace!.name }));
    });

    it('mounts secrets at /var/openfaas/secrets', async () => {
      const created = await request(`${hub!.url}/system/secrets`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ name: 'api-key', value: 's3cret' }),
      });
      assert.equal(created.status, 201, created.text);
      const spec = {
        service: 'secret-reader',
        image: shellImage,
        envProcess: 'cat /var/openfaas/secrets/api-key',
        secrets: ['api-key'],
      };
      assert.equal((await deploy(spec)).status, 202);
      await available('secret-reader', 1);
      const res = await request(`${hub!.url}/function/secret-reader`, { method: 'POST', body: '' });
      assert.equal(res.text, 's3cret');
    });

    it('refuses what cannot run, with a clear error, and leaves nothing half-deployed', async () => {
      const apps = kubeConfig.makeApiClient(AppsV1Api);
      const cases = [
        {
          spec: {
            service: 'no-image',
            image: `${registry!.address}/no-such-image:1`,
            envProcess: 'cat',
          },
          said: /cannot deploy "no-image": image ".*no-such-image:1" cannot be pulled/,
        },
        {
          spec: {
            service: 'no-node',
            image: shellImage,
            envProcess: 'cat',
            constraints: ['node.kubernetes.io/instance-type==no-such-type'],
          },
          said: /cannot deploy "no-node": no node can run it/,
        },
        {
          spec: { service: 'bad-constraint', image: shellImage, constraints: ['not a constraint'] },
          said: /constraint "not a constraint" is not a node label match/,
        },
        {
          spec: { service: 'no-secret', image: shellImage, secrets: ['missing-secret'] },
          said: /secrets not found in namespace ".*": missing-secret/,
        },
        {
          spec: { service: 'bad-label', image: shellImage, labels: { team: 'not a label value' } },
          said: /cannot deploy "bad-label": .*Invalid value/,
        },
      ];
      for (const { spec, said } of cases) {
        const res = await deploy(spec);
        assert.equal(res.status, 400, `${spec.service}: ${res.status} ${res.text}`);
        assert.match(res.text, said);
        await assert.rejects(
          apps.readNamespacedDeployment({ name: spec.service, namespace: namespace!.name }),
          `${spec.service} left a Deployment behind`,
        );
        const listed = await request(`${hub!.url}/system/function/${spec.service}`, {
          headers: systemAuth,
        });
        assert.equal(listed.status, 404);
      }
    });
  },
);
