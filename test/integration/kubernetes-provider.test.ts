import { after, before, describe, it } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import { pushImage } from '../../cli/docker-images.js';
import { silentLogger } from '../../core/logger.js';
import { KubernetesProvider } from '../../deploy/kubernetes/kubernetes-provider.js';
import {
  buildWatchdogOnly,
  dockerUnavailable,
  importBaseImage,
  startDocker,
  startRegistry,
  type RunningDocker,
  type RunningRegistry,
} from '../helpers/docker.js';
import { clusterUnavailable, testNamespace, useCluster } from '../helpers/k8s.js';
import { providerContract, randomName } from './provider-contract.js';

const skip = clusterUnavailable() ?? dockerUnavailable();

let engine: RunningDocker | undefined;
let registry: RunningRegistry | undefined;
let kubeConfig: KubeConfig;
/** fnbus-watchdog on a small base, in the registry the cluster pulls from. */
let image: string;

before(async () => {
  if (skip) return;
  const cluster = useCluster();
  [engine, registry] = await Promise.all([startDocker(), startRegistry()]);
  image = `${registry.address}/watchdog-only:1`;
  await buildWatchdogOnly(engine.docker, await importBaseImage(engine.docker, 'node'), image);
  await pushImage(engine.docker, image, () => undefined);
  ({ kubeConfig } = await cluster);
});
after(async () => {
  await engine?.stop();
  await registry?.stop();
});

if (skip) {
  describe('Provider contract: kubernetes', { skip }, () => {
    it('runs on a cluster of its own', () => undefined);
  });
} else {
  providerContract(
    'kubernetes',
    async () => {
      const namespace = await testNamespace(kubeConfig, randomName('contract'));
      const provider = new KubernetesProvider({
        kubeConfig,
        namespace: namespace.name,
        logger: silentLogger,
      });
      return {
        provider,
        echoFunction: (name) => ({
          service: name,
          image,
          envProcess: 'cat',
          envVars: { log_callid: 'true' },
        }),
        async close() {
          await provider.close();
          await namespace.remove();
        },
      };
    },
    { readyTimeoutMs: 90_000 },
  );
}
