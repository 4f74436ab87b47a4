import {
  createConfiguration,
  ServerConfiguration,
  type KubeConfig,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';

/** How long one call to the API server may take: one that is never answered holds no longer. */
const apiCallTimeoutMs = 15_000;

/**
 * An API client (CoreV1Api, AppsV1Api, ...) for the kubeconfig's cluster, as
 * `KubeConfig.makeApiClient` makes it, with a deadline on every call (`timeoutMs`). Watches and
 * log streams go through their own classes and last as long as they are wanted.
 */
export function apiClient<T>(
  kubeConfig: KubeConfig,
  api: new (configuration: ReturnType<typeof createConfiguration>) => T,
  timeoutMs = apiCallTimeoutMs,
): T {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  return new api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kubeConfig },
      promiseMiddleware: [
        {
          pre: (context: RequestContext) => {
            context.setSignal(AbortSignal.timeout(timeoutMs));
            return Promise.resolve(context);
          },
          post: (response: ResponseContext) => Promise.resolve(response),
        },
      ],
    }),
  );
}
