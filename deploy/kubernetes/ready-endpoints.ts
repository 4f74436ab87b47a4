import {
  DiscoveryV1Api,
  makeInformer,
  type Informer,
  type KubeConfig,
  type V1EndpointSlice,
} from '@kubernetes/client-node';
import type { Logger } from '../../core/logger.js';
import { FaasFunctionLabel } from '../../core/function-rules.js';
import { apiClient } from './api-clients.js';

/** The label the EndpointSlice controller puts on every slice: the Service it belongs to. */
const serviceNameLabel = 'kubernetes.io/service-name';

/** How long a watch that failed waits before it starts again. */
const rewatchDelayMs = 2000;

interface NamespaceWatch {
  informer: Informer<V1EndpointSlice>;
  /** Started: its first list is in. */
  started: Promise<void>;
  /** service -> slice name -> the slice's ready addresses. */
  slices: Map<string, Map<string, string[]>>;
  /** service -> ready addresses, all slices together (what resolve spreads calls over). */
  ready: Map<string, string[]>;
}

/**
 * The ready replicas of every function, from the EndpointSlices of their Services: watched, not
 * polled (one informer per namespace, started on the first call that needs it), so a replica
 * that turns ready or goes away is seen in the time an event takes. A watch that fails starts
 * again on its own.
 */
export class ReadyEndpoints {
  readonly #kubeConfig: KubeConfig;
  readonly #logger: Logger;
  readonly #namespaces = new Map<string, NamespaceWatch>();
  readonly #turn = new Map<string, number>();
  #closed = false;

  constructor(kubeConfig: KubeConfig, logger: Logger) {
    this.#kubeConfig = kubeConfig;
    this.#logger = logger;
  }

  /** The ready addresses of a function's replicas (pod IPs), once its namespace is watched. */
  async addresses(service: string, namespace: string): Promise<readonly string[]> {
    const watch = this.#watch(namespace);
    await watch.started;
    return watch.ready.get(service) ?? [];
  }

  /** One ready address, taking turns across them; undefined when none is ready. */
  async pick(service: string, namespace: string): Promise<string | undefined> {
    const addresses = await this.addresses(service, namespace);
    if (addresses.length === 0) return undefined;
    const key = `${service}.${namespace}`;
    const turn = (this.#turn.get(key) ?? 0) % addresses.length;
    this.#turn.set(key, turn + 1);
    return addresses[turn];
  }

  /** Forgets a function at once (it was removed): its slices' deletion comes later. */
  forget(service: string, namespace: string): void {
    const watch = this.#namespaces.get(namespace);
    watch?.slices.delete(service);
    watch?.ready.delete(service);
    this.#turn.delete(`${service}.${namespace}`);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#namespaces.values()].map((watch) => watch.informer.stop()));
    this.#namespaces.clear();
  }

  #watch(namespace: string): NamespaceWatch {
    const existing = this.#namespaces.get(namespace);
    if (existing) return existing;
    const api = apiClient(this.#kubeConfig, DiscoveryV1Api);
    const informer = makeInformer(
      this.#kubeConfig,
      `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
      () => api.listNamespacedEndpointSlice({ namespace, labelSelector: FaasFunctionLabel }),
      FaasFunctionLabel,
    );
    const watch: NamespaceWatch = {
      informer,
      started: Promise.resolve(),
      slices: new Map(),
      ready: new Map(),
    };
    const update = (slice: V1EndpointSlice) => this.#update(watch, slice, false);
    informer.on('add', update);
    informer.on('update', update);
    informer.on('delete', (slice) => this.#update(watch, slice, true));
    informer.on('error', (error: unknown) => {
      if (this.#closed) return;
      this.#logger.warn(
        { namespace, reason: (error as Error | undefined)?.message ?? 'unknown' },
        'watching endpoints failed; watching again',
      );
      setTimeout(() => {
        if (!this.#closed) informer.start().catch(() => undefined);
      }, rewatchDelayMs).unref();
    });
    watch.started = informer.start();
    // A first list that fails is retried by the next call that needs the namespace.
    watch.started.catch(() => {
      if (this.#namespaces.get(namespace) === watch) this.#namespaces.delete(namespace);
    });
    this.#namespaces.set(namespace, watch);
    return watch;
  }

  #update(watch: NamespaceWatch, slice: V1EndpointSlice, deleted: boolean): void {
    const service = slice.metadata?.labels?.[serviceNameLabel];
    const name = slice.metadata?.name;
    if (!service || !name) return;
    const slices = watch.slices.get(service) ?? new Map<string, string[]>();
    if (deleted) {
      slices.delete(name);
    } else {
      // A missing `ready` means ready (the API's rule); terminating replicas are not.
      const ready = (slice.endpoints ?? [])
        .filter((endpoint) => endpoint.conditions?.ready !== false)
        .flatMap((endpoint) => endpoint.addresses.slice(0, 1));
      slices.set(name, ready);
    }
    if (slices.size === 0) {
      watch.slices.delete(service);
      watch.ready.delete(service);
      return;
    }
    watch.slices.set(service, slices);
    watch.ready.set(service, [...slices.values()].flat());
  }
}
