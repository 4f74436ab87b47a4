import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  KubernetesObjectApi,
  RbacAuthorizationV1Api,
  type KubeConfig,
  type KubernetesObject,
  type V1Deployment,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { pushImage } from '../../cli/docker-images.js';
import { watchdogImage } from '../../cli/watchdog-runtime.js';
import {
  buildFrom,
  buildWatchdogOnly,
  dockerUnavailable,
  importBaseImage,
  startDocker,
  startRegistry,
  type RunningDocker,
  type RunningRegistry,
} from '../helpers/docker.js';
import { request } from '../helpers/http.js';
import { hubCredentials } from '../helpers/hub.js';
import { clusterUnavailable, useCluster } from '../helpers/k8s.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir, repoRoot } from '../helpers/watchdog.js';
import { randomName } from '../integration/provider-contract.js';

const skip = clusterUnavailable() ?? dockerUnavailable();

let engine: RunningDocker | undefined;
let registry: RunningRegistry | undefined;
let kubeConfig: KubeConfig;
/** The manifests' namespaces, renamed for this run. */
const system = randomName('fnbus');
const functions = `${system}-fn`;
const clusterWide = `fnbus-namespaces-${system}`;
let gatewayUrl: string;
let functionImage: string;

const auth = {
  Authorization: `Basic ${Buffer.from(`${hubCredentials.user}:${hubCredentials.password}`).toString('base64')}`,
};

/**
 * deploy/kubernetes/manifests/fnbus.yaml as a user applies it, but for this run's namespaces
 * and images, and with the API server's address for the pods (the tests' cluster has no
 * kube-proxy, so its ClusterIP does not route).
 */
function manifests(images: { fnbus: string; nats: string }, apiServer: URL): KubernetesObject[] {
  const text = readFileSync(
    join(repoRoot, 'deploy', 'kubernetes', 'manifests', 'fnbus.yaml'),
    'utf8',
  )
    .replaceAll('openfaas-fn', functions)
    .replaceAll('.openfaas:', `.${system}:`)
    .replace(/namespace: openfaas$/gm, `namespace: ${system}`)
    .replace(/^ {2}name: openfaas$/m, `  name: ${system}`)
    .replaceAll('fnbus-namespaces', clusterWide)
    .replaceAll('image: fnbus:0.1.0', `image: ${images.fnbus}`)
    .replaceAll('image: nats:2.10', `image: ${images.nats}`);
  const objects = parseAllDocuments(text).map((doc) => doc.toJS() as KubernetesObject);
  for (const object of objects) {
    if (object.kind !== 'Deployment') continue;
    const container = (object as V1Deployment).spec!.template.spec!.containers[0]!;
    container.env = [
      ...(container.env ?? []),
      { name: 'KUBERNETES_SERVICE_HOST', value: apiServer.hostname },
      { name: 'KUBERNETES_SERVICE_PORT', value: apiServer.port },
    ];
  }
  return objects;
}

before(async () => {
  if (skip) return;
  const cluster = useCluster();
  [engine, registry] = await Promise.all([startDocker(), startRegistry()]);
  const base = await importBaseImage(engine.docker, 'node');
  functionImage = `${registry.address}/watchdog-only:1`;
  await buildWatchdogOnly(engine.docker, base, functionImage);
  const fnbusImage = `${registry.address}/fnbus:test`;
  // This checkout's build, in a context of its own (the repository's .dockerignore leaves the
  // build out: its Dockerfile builds from source).
  const hubContext = makeTempDir('fnbus-hub-image-');
  const parts = [
    'package.json',
    'bin',
    'dist',
    'node_modules',
    'templates',
    'test/k8s/hub.Dockerfile',
  ];
  for (const part of parts) {
    cpSync(join(repoRoot, part), join(hubContext, part), {
      recursive: true,
      verbatimSymlinks: true,
    });
  }
  await buildFrom(engine.docker, {
    context: hubContext,
    paths: parts.slice(0, -1),
    dockerfile: 'test/k8s/hub.Dockerfile',
    tag: fnbusImage,
    buildargs: { WATCHDOG_IMAGE: watchdogImage, BASE_IMAGE: base },
  });
  // NATS from this machine's nats-server, on the same base.
  const natsContext = makeTempDir('fnbus-nats-image-');
  copyFileSync(
    execFileSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).trim(),
    join(natsContext, 'nats-server'),
  );
  writeFileSync(
    join(natsContext, 'Dockerfile'),
    `FROM ${base}\nCOPY nats-server /usr/local/bin/nats-server\nENTRYPOINT ["/usr/local/bin/nats-server"]\n`,
  );
  const natsImage = `${registry.address}/nats:test`;
  await buildFrom(engine.docker, {
    context: natsContext,
    paths: ['nats-server'],
    dockerfile: 'Dockerfile',
    tag: natsImage,
  });
  for (const image of [functionImage, fnbusImage, natsImage]) {
    await pushImage(engine.docker, image, () => undefined);
  }
  ({ kubeConfig } = await cluster);

  const objects = manifests(
    { fnbus: fnbusImage, nats: natsImage },
    new URL(kubeConfig.getCurrentCluster()!.server),
  );
  const api = KubernetesObjectApi.makeApiClient(kubeConfig);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  for (const object of objects.filter((o) => o.kind === 'Namespace')) await api.create(object);
  await core.createNamespacedSecret({
    namespace: system,
    body: {
      metadata: { name: 'fnbus-basic-auth' },
      stringData: {
        'basic-auth-user': hubCredentials.user,
        'basic-auth-password': hubCredentials.password,
      },
    },
  });
  // The tests' cluster has no DNS and no kube-proxy: a Service name does not resolve in a pod.
  // So the manifests go on in turns, each component given the pod IP of the one it talks to
  // (where a real cluster resolves nats.openfaas and gateway.openfaas).
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const running = async (name: string): Promise<string> => {
    await waitFor(
      async () =>
        ((await apps.readNamespacedDeployment({ name, namespace: system })).status
          ?.availableReplicas ?? 0) > 0,
      { timeoutMs: 180_000, intervalMs: 500, what: `${name} to run in the cluster` },
    );
    const pods = await core.listNamespacedPod({ namespace: system, labelSelector: `app=${name}` });
    return pods.items.find((pod) => pod.status?.phase === 'Running')!.status!.podIP!;
  };
  const pointed = (object: KubernetesObject, from: string, to: string) => {
    if (object.kind !== 'Deployment') return object;
    const container = (object as V1Deployment).spec!.template.spec!.containers[0]!;
    container.args = container.args?.map((arg) => arg.replace(from, to));
    return object;
  };
  const inTurn = (name: string) =>
    objects.find((o) => o.kind === 'Deployment' && o.metadata?.name === name)!;
  const later = ['gateway', 'queue-worker', 'cron-connector'];
  for (const object of objects) {
    if (object.kind === 'Namespace' || later.includes(object.metadata?.name ?? '')) continue;
    await api.create(object);
  }
  const nats = await running('nats');
  for (const name of later) pointed(inTurn(name), `nats.${system}`, nats);
  await api.create(inTurn('gateway'));
  const gateway = await running('gateway');
  for (const name of later.slice(1)) {
    await api.create(pointed(inTurn(name), `gateway.${system}`, gateway));
    await running(name);
  }
  gatewayUrl = `http://${gateway}:8080`;
});

after(async () => {
  if (kubeConfig && !process.env.FNBUS_TEST_KEEP) {
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    for (const name of [system, functions]) await core.deleteNamespace({ name }).catch(() => {});
    await rbac.deleteClusterRoleBinding({ name: clusterWide }).catch(() => {});
    await rbac.deleteClusterRole({ name: clusterWide }).catch(() => {});
  }
  await engine?.stop();
  await registry?.stop();
});

/** The gateway pod's log, for a failure's message. */
async function gatewayLog(): Promise<string> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const pods = await core.listNamespacedPod({ namespace: system, labelSelector: 'app=gateway' });
  const name = pods.items[0]?.metadata?.name ?? '';
  return core.readNamespacedPodLog({ name, namespace: system, tailLines: 40 }).catch(String);
}

describe('fnbus in the cluster, from deploy/kubernetes/manifests', { skip }, () => {
  it('runs the gateway on in-cluster credentials: deploys, calls sync and async through the queue worker', async () => {
    const json = { 'Content-Type': 'application/json', ...auth };
    const deployed = await request(`${gatewayUrl}/system/functions`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ service: 'echo', image: functionImage, envProcess: 'cat' }),
    });
    assert.equal(deployed.status, 202, `${deployed.text}\n${await gatewayLog()}`);
    await waitFor(
      async () => {
        const res = await request(`${gatewayUrl}/system/function/echo`, { headers: auth });
        return (
          res.status === 200 &&
          (JSON.parse(res.text) as { availableReplicas: number }).availableReplicas === 1
        );
      },
      { timeoutMs: 120_000, intervalMs: 250, what: 'echo to be ready' },
    );
    const sync = await request(`${gatewayUrl}/function/echo`, { method: 'POST', body: 'in here' });
    assert.equal(sync.status, 200, sync.text);
    assert.equal(sync.text, 'in here');

    const queued = await request(`${gatewayUrl}/async-function/echo`, {
      method: 'POST',
      body: 'later',
    });
    assert.equal(queued.status, 202, queued.text);
    const callId = queued.headers['x-call-id'] as string;
    await waitFor(
      async () => {
        const res = await request(`${gatewayUrl}/system/calls/${callId}`, { headers: auth });
        return (
          res.status === 200 && (JSON.parse(res.text) as { state: string }).state === 'succeeded'
        );
      },
      { timeoutMs: 60_000, intervalMs: 250, what: 'the async call to run in the queue worker' },
    );
    // Without the credentials, /system stays shut.
    const refused = await request(`${gatewayUrl}/system/functions`);
    assert.equal(refused.status, 401);
  });

  it("limits the gateway's service account to the functions' namespace", async () => {
    const authorization = kubeConfig.makeApiClient(AuthorizationV1Api);
    const can = async (verb: string, resource: string, namespace: string, group = '') => {
      const review = await authorization.createSubjectAccessReview({
        body: {
          spec: {
            user: `system:serviceaccount:${system}:fnbus-gateway`,
            groups: ['system:serviceaccounts', `system:serviceaccounts:${system}`],
            resourceAttributes: { verb, resource, namespace, group },
          },
        },
      });
      return review.status?.allowed === true;
    };
    assert.equal(await can('create', 'deployments', functions, 'apps'), true);
    assert.equal(await can('watch', 'endpointslices', functions, 'discovery.k8s.io'), true);
    assert.equal(await can('watch', 'pods', functions), true);
    assert.equal(await can('get', 'secrets', 'kube-system'), false);
    assert.equal(await can('create', 'deployments', 'default', 'apps'), false);
    assert.equal(await can('delete', 'namespaces', ''), false);
  });
});
