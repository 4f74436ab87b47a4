import type { Provider } from '../../core/provider.js';
import type { ProcessProvider } from '../../deploy/process/process-provider.js';

/**
 * The process provider's required methods, bound, and none of its optional capabilities
 * (logs, secrets, namespaces): the gateway sees it as it will see a remote
 * orchestrator. Tests add back the capabilities they need.
 */
export function baseProvider(provider: ProcessProvider): Provider {
  return {
    info: () => provider.info(),
    deploy: (spec) => provider.deploy(spec),
    update: (spec) => provider.update(spec),
    remove: (name, namespace) => provider.remove(name, namespace),
    list: (namespace) => provider.list(namespace),
    get: (name, namespace) => provider.get(name, namespace),
    scale: (name, replicas, namespace) => provider.scale(name, replicas, namespace),
    resolve: (name, namespace) => provider.resolve(name, namespace),
  };
}
