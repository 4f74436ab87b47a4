import { KubeConfig } from '@kubernetes/client-node';
import { EnvReader } from '../../core/config.js';
import { ConfigError } from '../../core/errors.js';
import type { Env } from '../../core/config.js';
import type { Logger } from '../../core/logger.js';
import { pullPolicies } from './function-objects.js';
import { KubernetesProvider } from './kubernetes-provider.js';

/**
 * The Kubernetes provider a `kubernetes://` URL names (checked by providerKind). Credentials as kubectl finds them: the
 * kubeconfig of `KUBECONFIG` (else ~/.kube/config), its context `?context=` when given, else
 * the pod's service account when running in a cluster. Functions go to `?namespace=` or the hub's
 * function namespace; `image_pull_policy` (faas-netes's variable) sets their pull policy.
 */
export function openKubernetesProvider(
  url: string,
  parts: { namespace: string; env: Env; logger: Logger },
): KubernetesProvider {
  const parsed = new URL(url);
  const kubeConfig = new KubeConfig();
  try {
    kubeConfig.loadFromDefault();
  } catch (error) {
    throw new ConfigError([
      `kubernetes://: cannot read the kubeconfig (${(error as Error).message})`,
    ]);
  }
  const context = parsed.searchParams.get('context');
  if (context) {
    if (!kubeConfig.getContexts().some((known) => known.name === context)) {
      throw new ConfigError([`kubernetes://: the kubeconfig has no context "${context}"`]);
    }
    kubeConfig.setCurrentContext(context);
  }
  if (!kubeConfig.getCurrentCluster()) {
    throw new ConfigError([
      'kubernetes://: no cluster: set KUBECONFIG, or run inside a cluster with a service account',
    ]);
  }
  const read = new EnvReader(parts.env);
  const { pullPolicy } = read.done({
    pullPolicy: read.oneOf('image_pull_policy', pullPolicies, 'Always'),
  });
  return new KubernetesProvider({
    kubeConfig,
    namespace: parsed.searchParams.get('namespace') || parts.namespace,
    pullPolicy,
    logger: parts.logger.child({ component: 'provider' }),
  });
}
