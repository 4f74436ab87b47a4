/**
 * Kubernetes benchmark, on the tests' cluster (test/k8s/k8s-cluster.sh: a real API server,
 * controllers, scheduler and kubelet on this machine):
 *   - deploy time of the example stack through `fnbus up -f --provider kubernetes://`: images
 *     built and pushed, then every function deployed and ready; and again with the images in the
 *     registry already (`--no-build --no-push`), deploy to ready alone;
 *   - cold start from zero (scaled to 0, pods gone, then one call: to its answer), p50/p99;
 *   - req/s through the gateway to the template function hello-node on Kubernetes beside the same
 *     function on the process provider (`fnbus up` on this machine), same load (wrk -t1 -c16).
 *
 *   npm run bench:kubernetes      (root; wrk; the cluster built: bash test/k8s/k8s-build.sh)
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  importBaseImage,
  startDocker,
  startRegistry,
  type RunningDocker,
  type RunningRegistry,
} from '../test/helpers/docker.js';
import { request } from '../test/helpers/http.js';
import { startHub, systemAuth, terminateHub, type RunningHub } from '../test/helpers/hub.js';
import { testNamespace, useCluster } from '../test/helpers/k8s.js';
import { makeTempDir } from '../test/helpers/watchdog.js';
import { percentile, until } from './processes.js';
import { wrk, type LoadResult } from './wrk.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const coldCycles = Number(process.env.BENCH_COLD_CYCLES ?? 10);
const exampleFunctions = [
  'cat',
  'sha512sum',
  'hello-node',
  'hello-python',
  'orders',
  'every-minute',
];
const json = { 'Content-Type': 'application/json', ...systemAuth };

async function status(hub: RunningHub, name: string) {
  const res = await request(`${hub.url}/system/function/${name}`, { headers: systemAuth });
  return res.status === 200
    ? (JSON.parse(res.text) as { replicas: number; availableReplicas: number })
    : undefined;
}

async function allReady(hub: RunningHub): Promise<void> {
  await until(
    async () => {
      for (const name of exampleFunctions) {
        if (((await status(hub, name))?.availableReplicas ?? 0) < 1) return false;
      }
      return true;
    },
    'every function of the stack to be ready',
    { timeoutMs: 600_000, everyMs: 50 },
  );
}

/** The example stack, copied, deployed by `fnbus up` on the cluster; ms to every function ready. */
async function upOnKubernetes(
  env: Record<string, string>,
  args: string[],
): Promise<{ hub: RunningHub; state: string; ms: number }> {
  const dir = makeTempDir('fnbus-bench-k8s-stack-');
  cpSync(join(root, 'examples'), dir, { recursive: true });
  const state = makeTempDir('fnbus-bench-k8s-state-');
  const startedAt = performance.now();
  const hub = await startHub(
    ['-f', join(dir, 'stack.yml'), '--provider', 'kubernetes://', ...args],
    state,
    env,
    undefined,
    900_000,
  );
  await allReady(hub);
  return { hub, state, ms: performance.now() - startedAt };
}

/** Scaled to zero (its pods gone), then one call: ms to the answer, `cycles` times, sorted. */
async function coldStarts(hub: RunningHub, name: string, cycles: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < cycles; i++) {
    await request(`${hub.url}/system/scale-function/${name}`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ serviceName: name, replicas: 0 }),
    });
    await until(async () => (await status(hub, name))?.availableReplicas === 0, `${name} at 0`, {
      timeoutMs: 120_000,
      everyMs: 50,
    });
    const startedAt = performance.now();
    const res = await request(`${hub.url}/function/${name}`, { method: 'POST', body: 'x' });
    if (res.status !== 200) throw new Error(`cold start of ${name}: ${res.status} ${res.text}`);
    times.push(performance.now() - startedAt);
  }
  return times.sort((a, b) => a - b);
}

async function load(url: string): Promise<LoadResult> {
  await wrk(url, { seconds: 2 });
  return wrk(url, { seconds });
}

async function main(): Promise<void> {
  let engine: RunningDocker | undefined;
  let registry: RunningRegistry | undefined;
  const hubs: { hub: RunningHub; state: string }[] = [];
  const namespaces: { remove(): Promise<void> }[] = [];
  try {
    const cluster = await useCluster();
    [engine, registry] = await Promise.all([startDocker(), startRegistry()]);
    const nodeBase = await importBaseImage(engine.docker, 'node');
    const pythonBase = await importBaseImage(engine.docker, 'python3');
    const env = (namespace: string) => ({
      KUBECONFIG: cluster.kubeconfigPath,
      DOCKER_HOST: engine!.host,
      REGISTRY: `${registry!.address}/`,
      SHELL_IMAGE: nodeBase,
      NODE_IMAGE: nodeBase,
      PYTHON_IMAGE: pythonBase,
      function_namespace: namespace,
    });

    const first = await testNamespace(cluster.kubeConfig, `bench-${process.pid}-a`);
    namespaces.push(first);
    const built = await upOnKubernetes(env(first.name), []);
    hubs.push(built);
    const second = await testNamespace(cluster.kubeConfig, `bench-${process.pid}-b`);
    namespaces.push(second);
    const deployed = await upOnKubernetes(env(second.name), ['--no-build', '--no-push']);
    hubs.push(deployed);
    await terminateHub(deployed.hub.hub, deployed.state);

    const onKubernetes = await load(`${built.hub.url}/function/hello-node`);
    const cold = await coldStarts(built.hub, 'cat', coldCycles);
    await terminateHub(built.hub.hub, built.state);

    // The same function on the process provider, on this machine.
    const local = await startHub(
      ['-f', join(root, 'examples', 'stack.yml')],
      makeTempDir('fnbus-bench-k8s-local-'),
      { FNBUS_IMAGES: makeTempDir('fnbus-bench-k8s-images-') },
      undefined,
      120_000,
    );
    hubs.push({ hub: local, state: '' });
    await allReady(local);
    const onProcess = await load(`${local.url}/function/hello-node`);

    const row = (name: string, r: LoadResult) =>
      `  ${name.padEnd(40)} ${r.requestsPerSecond.toFixed(0).padStart(7)} req/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  errors ${r.errors + r.non2xx}`;
    process.stdout.write(
      [
        'fnbus on Kubernetes (the tests cluster: one node on this 2-core machine)',
        `  example stack (6 functions), fnbus up to all ready, images built and pushed: ${(built.ms / 1000).toFixed(1)} s`,
        `  the same stack again, images in the registry (--no-build --no-push):         ${(deployed.ms / 1000).toFixed(1)} s`,
        `  cold start from zero (cat, ${cycles(cold)}): p50 ${percentile(cold, 50).toFixed(0)} ms, p99 ${percentile(cold, 99).toFixed(0)} ms (min ${cold[0]?.toFixed(0)}, max ${cold.at(-1)?.toFixed(0)})`,
        `  req/s through the gateway to hello-node (wrk -t1 -c16 -d${seconds}s):`,
        row('Kubernetes provider (gateway -> pod)', onKubernetes),
        row('process provider (fnbus up, same machine)', onProcess),
        `  Kubernetes / process: ${(onKubernetes.requestsPerSecond / onProcess.requestsPerSecond).toFixed(2)}x`,
        '',
      ].join('\n'),
    );
  } finally {
    for (const { hub, state } of hubs) {
      if (hub.hub.exitCode === null) await terminateHub(hub.hub, state || makeTempDir('x-'));
    }
    for (const namespace of namespaces) await namespace.remove();
    await engine?.stop();
    await registry?.stop();
  }
}

function cycles(times: number[]): string {
  return `${times.length} cycles`;
}

await main();
