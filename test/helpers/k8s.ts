import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { repoRoot } from './watchdog.js';

/** Where test/k8s/k8s-build.sh caches the Kubernetes binaries (its default). */
const k8sCache = process.env.FNBUS_K8S_CACHE ?? join(homedir(), '.cache', 'fnbus', 'k8s');

/**
 * Why the Kubernetes tests cannot run here, or undefined when they can: they need root (a
 * kubelet), Debian's containerd, and the cluster built once by `bash test/k8s/k8s-build.sh`
 * (~8-18 minutes the first time; CI runs it before the tests).
 */
export function clusterUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'a kubelet needs root';
  if (!existsSync('/usr/bin/containerd')) return 'no containerd (apt-get install containerd)';
  if (!existsSync(join(k8sCache, 'bin', 'v1.37.2', 'kubelet'))) {
    return 'Kubernetes is not built here: run bash test/k8s/k8s-build.sh first';
  }
  return undefined;
}

/**
 * The test cluster (test/k8s/k8s-cluster.sh): started by the first test file that needs it, shared
 * by the others (the script takes a lock and finds it running). It stays up after the tests:
 * `bash test/k8s/k8s-cluster.sh stop` stops it, as CI does at its end.
 */
export async function useCluster(): Promise<{ kubeConfig: KubeConfig; kubeconfigPath: string }> {
  const { stdout } = await promisify(execFile)(
    'bash',
    [join(repoRoot, 'test', 'k8s', 'k8s-cluster.sh'), 'start'],
    { maxBuffer: 1 << 20 },
  );
  const kubeconfigPath = stdout.trim().split('\n').pop() ?? '';
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);
  return { kubeConfig, kubeconfigPath };
}

/** A namespace of the test's own, marked as one for functions; removed (without waiting) after. */
export async function testNamespace(
  kubeConfig: KubeConfig,
  name: string,
): Promise<{ name: string; remove(): Promise<void> }> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({
    body: { metadata: { name, annotations: { openfaas: '1' } } },
  });
  return {
    name,
    async remove() {
      await core.deleteNamespace({ name }).catch(() => undefined);
    },
  };
}
