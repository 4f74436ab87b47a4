import {
  AppsV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { NotFoundError, UnavailableError, ValidationError } from '../../core/errors.js';
import { assertDnsLabel } from '../../core/function-name.js';
import { FaasFunctionLabel, scaleRules } from '../../core/function-rules.js';
import type { FunctionDeployment, FunctionStatus } from '../../core/function-types.js';
import type { ProviderInfo } from '../../core/info-types.js';
import type { LogMessage, LogRequest } from '../../core/log-types.js';
import type { Logger } from '../../core/logger.js';
import type { Provider } from '../../core/provider.js';
import { build, version } from '../../watchdog/version.js';
import {
  deploymentOf,
  serviceOf,
  statusOf,
  watchdogPort,
  type PullPolicy,
} from './function-objects.js';
import { apiClient } from './api-clients.js';
import { isNotFound, kubeError } from './kube-errors.js';
import { KubernetesNamespaces } from './kubernetes-namespaces.js';
import { KubernetesSecrets } from './kubernetes-secrets.js';
import { podLogs } from './pod-logs.js';
import { ReadyEndpoints } from './ready-endpoints.js';

/** Why a container waits, when its image will not come. */
const pullFailures = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
]);

/** A message from the cluster, cut to a line of reasonable length. */
function shortened(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

export interface KubernetesProviderOptions {
  kubeConfig: KubeConfig;
  /** Where functions go when none is named (default `openfaas-fn`, as faas-netes). */
  namespace?: string;
  /** The functions' image pull policy (default `Always`, as faas-netes). */
  pullPolicy?: PullPolicy;
  /**
   * How long deploy and update wait to see new pods pull their image and get a node (default
   * 30 s): an image that cannot be pulled, or constraints no node meets, are refused then.
   */
  admitWithinMs?: number;
  logger: Logger;
}

/**
 * Functions on Kubernetes, in the shape faas-netes gives them, so OpenFaaS's tools find what they
 * expect: a Deployment and a Service per function (function-objects.ts), scaling through the
 * Deployment's scale subresource, secrets as Secrets, logs from the pods. Calls reach a ready
 * replica's pod IP directly, chosen in turn among the ready endpoints of the function's
 * EndpointSlices, which are watched (ready-endpoints.ts): the gateway runs where pod IPs route
 * (inside the cluster, or on a node of a flat network).
 */
export class KubernetesProvider implements Provider {
  readonly secrets: KubernetesSecrets;
  readonly namespaceStore: KubernetesNamespaces;
  readonly #core: CoreV1Api;
  readonly #apps: AppsV1Api;
  readonly #kubeConfig: KubeConfig;
  readonly #namespace: string;
  readonly #pullPolicy: PullPolicy;
  readonly #endpoints: ReadyEndpoints;
  /** Functions removed here whose endpoints may still be listed for a moment: not resolvable. */
  readonly #removed = new Set<string>();
  readonly #admitWithinMs: number;

  constructor(options: KubernetesProviderOptions) {
    this.#kubeConfig = options.kubeConfig;
    this.#core = apiClient(options.kubeConfig, CoreV1Api);
    this.#apps = apiClient(options.kubeConfig, AppsV1Api);
    this.#namespace = options.namespace ?? 'openfaas-fn';
    this.#pullPolicy = options.pullPolicy ?? 'Always';
    this.#admitWithinMs = options.admitWithinMs ?? 30_000;
    this.#endpoints = new ReadyEndpoints(options.kubeConfig, options.logger);
    this.secrets = new KubernetesSecrets(this.#core, (ns) => this.#namespaceOf(ns));
    this.namespaceStore = new KubernetesNamespaces(this.#core, this.#apps, this.#namespace);
  }

  info(): Promise<ProviderInfo> {
    return Promise.resolve({
      provider: 'fnbus-kubernetes',
      orchestration: 'kubernetes',
      version: { release: version, sha: build.sha, commit_message: build.commitMessage },
    });
  }

  namespaces(): Promise<string[]> {
    return this.namespaceStore.names();
  }

  async deploy(spec: FunctionDeployment): Promise<void> {
    const namespace = await this.#checked(spec);
    const replicas = scaleRules(spec).rules.min;
    const deployment = deploymentOf(spec, { namespace, replicas, pullPolicy: this.#pullPolicy });
    const service = serviceOf(spec, namespace);
    try {
      await this.#apps.createNamespacedDeployment({ namespace, body: deployment });
    } catch (error) {
      throw kubeError(`cannot deploy "${spec.service}"`, error);
    }
    try {
      await this.#core.createNamespacedService({ namespace, body: service });
    } catch (error) {
      // Nothing half-deployed: the Deployment goes too.
      await this.#apps
        .deleteNamespacedDeployment({ name: spec.service, namespace })
        .catch(() => undefined);
      throw kubeError(`cannot create the service of "${spec.service}"`, error);
    }
    this.#removed.delete(`${spec.service}.${namespace}`);
    const refused = replicas > 0 ? await this.#refusal(spec, namespace) : undefined;
    if (refused) {
      // Nothing half-deployed: a function whose pods cannot run is not left behind.
      await this.#apps
        .deleteNamespacedDeployment({ name: spec.service, namespace })
        .catch(() => undefined);
      await this.#core
        .deleteNamespacedService({ name: spec.service, namespace })
        .catch(() => undefined);
      this.#removed.add(`${spec.service}.${namespace}`);
      throw new ValidationError(`cannot deploy "${spec.service}": ${refused}`);
    }
  }

  async update(spec: FunctionDeployment): Promise<void> {
    const namespace = await this.#checked(spec);
    const existing = await this.#deployment(spec.service, namespace);
    const replicas = existing.spec?.replicas ?? 1;
    const deployment = deploymentOf(spec, { namespace, replicas, pullPolicy: this.#pullPolicy });
    // The object as read, with the new spec and metadata: its resourceVersion guards the write.
    deployment.metadata = {
      ...deployment.metadata,
      resourceVersion: existing.metadata?.resourceVersion,
    };
    try {
      await this.#apps.replaceNamespacedDeployment({
        name: spec.service,
        namespace,
        body: deployment,
      });
    } catch (error) {
      throw kubeError(`cannot update "${spec.service}"`, error);
    }
    const refused = replicas > 0 ? await this.#refusal(spec, namespace) : undefined;
    if (refused) {
      // The old replicas still serve (a rolling update never takes one away): back to their spec.
      const current = await this.#deployment(spec.service, namespace);
      existing.metadata = {
        ...existing.metadata,
        resourceVersion: current.metadata?.resourceVersion,
      };
      await this.#apps
        .replaceNamespacedDeployment({ name: spec.service, namespace, body: existing })
        .catch((error: unknown) => {
          throw kubeError(`cannot roll "${spec.service}" back after a refused update`, error);
        });
      throw new ValidationError(
        `cannot update "${spec.service}": ${refused}; the previous version still runs`,
      );
    }
    // The Service carries the annotations too; its spec does not change.
    try {
      await this.#core.patchNamespacedService(
        {
          name: spec.service,
          namespace,
          body: { metadata: { annotations: serviceOf(spec, namespace).metadata?.annotations } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (error) {
      if (!isNotFound(error))
        throw kubeError(`cannot update the service of "${spec.service}"`, error);
      await this.#core.createNamespacedService({ namespace, body: serviceOf(spec, namespace) });
    }
  }

  async remove(name: string, namespace?: string): Promise<void> {
    const ns = this.#namespaceOf(namespace);
    await this.#deployment(name, ns);
    try {
      await this.#apps.deleteNamespacedDeployment({
        name,
        namespace: ns,
        body: { propagationPolicy: 'Foreground' },
      });
    } catch (error) {
      if (!isNotFound(error)) throw kubeError(`cannot remove "${name}"`, error);
    }
    await this.#core.deleteNamespacedService({ name, namespace: ns }).catch((error: unknown) => {
      if (!isNotFound(error)) throw kubeError(`cannot remove the service of "${name}"`, error);
    });
    this.#removed.add(`${name}.${ns}`);
    this.#endpoints.forget(name, ns);
    // Foreground deletion: the Deployment stays, marked, until its pods are gone. The name is
    // free once it has.
    await this.#gone(name, ns);
  }

  async list(namespace?: string): Promise<FunctionStatus[]> {
    const ns = this.#namespaceOf(namespace);
    try {
      const deployments = await this.#apps.listNamespacedDeployment({
        namespace: ns,
        labelSelector: FaasFunctionLabel,
      });
      return deployments.items
        .filter((deployment) => !deployment.metadata?.deletionTimestamp)
        .map(statusOf);
    } catch (error) {
      throw kubeError(`cannot list the functions of namespace "${ns}"`, error);
    }
  }

  async get(name: string, namespace?: string): Promise<FunctionStatus | undefined> {
    const ns = this.#namespaceOf(namespace);
    try {
      const deployment = await this.#apps.readNamespacedDeployment({ name, namespace: ns });
      if (!deployment.metadata?.labels?.[FaasFunctionLabel]) return undefined;
      if (deployment.metadata.deletionTimestamp) return undefined;
      return statusOf(deployment);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw kubeError(`cannot read "${name}"`, error);
    }
  }

  async scale(name: string, replicas: number, namespace?: string): Promise<void> {
    if (!Number.isInteger(replicas) || replicas < 0) {
      throw new ValidationError(`replicas must be a whole number of 0 or more, not ${replicas}`);
    }
    const ns = this.#namespaceOf(namespace);
    await this.#deployment(name, ns);
    try {
      await this.#apps.patchNamespacedDeploymentScale(
        { name, namespace: ns, body: { spec: { replicas } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (error) {
      throw kubeError(`cannot scale "${name}"`, error);
    }
  }

  async resolve(name: string, namespace?: string): Promise<URL> {
    const ns = this.#namespaceOf(namespace);
    const key = `${name}.${ns}`;
    if (this.#removed.has(key)) throw new NotFoundError(`function "${name}" not found`);
    let address: string | undefined;
    try {
      address = await this.#endpoints.pick(name, ns);
    } catch (error) {
      throw kubeError(`cannot watch the endpoints of namespace "${ns}"`, error);
    }
    if (address !== undefined) {
      return new URL(`http://${address.includes(':') ? `[${address}]` : address}:${watchdogPort}/`);
    }
    await this.#deployment(name, ns);
    throw new UnavailableError(`function "${name}" has no ready replica`);
  }

  logs(req: LogRequest, signal: AbortSignal): AsyncIterable<LogMessage> {
    const namespace = this.#namespaceOf(req.namespace);
    const exists = () => this.#deployment(req.name, namespace);
    const sources = { core: this.#core, kubeConfig: this.#kubeConfig };
    return (async function* () {
      await exists();
      yield* podLogs(sources, { ...req, namespace }, signal);
    })();
  }

  async close(): Promise<void> {
    await this.#endpoints.close();
  }

  #namespaceOf(namespace?: string): string {
    return namespace || this.#namespace;
  }

  /** The spec's namespace, once what Kubernetes would refuse later is refused here. */
  async #checked(spec: FunctionDeployment): Promise<string> {
    assertDnsLabel(spec.service ?? '', 'function name');
    if (!spec.image) throw new ValidationError(`function "${spec.service}" has no image`);
    const namespace = this.#namespaceOf(spec.namespace);
    try {
      await this.#core.readNamespace({ name: namespace });
    } catch (error) {
      if (!isNotFound(error)) throw kubeError(`cannot read namespace "${namespace}"`, error);
      throw new ValidationError(`namespace "${namespace}" does not exist: create it first`);
    }
    const missing = await this.secrets.missing(spec.secrets ?? [], namespace);
    if (missing.length > 0) {
      throw new ValidationError(
        `secrets not found in namespace "${namespace}": ${missing.join(', ')} (create them first)`,
      );
    }
    return namespace;
  }

  /** The function's Deployment; NotFoundError when there is none (or one that is not a function). */
  async #deployment(name: string, namespace: string) {
    try {
      const deployment = await this.#apps.readNamespacedDeployment({ name, namespace });
      if (
        deployment.metadata?.labels?.[FaasFunctionLabel] &&
        !deployment.metadata.deletionTimestamp
      ) {
        return deployment;
      }
    } catch (error) {
      if (!isNotFound(error)) throw kubeError(`cannot read "${name}"`, error);
    }
    throw new NotFoundError(`function "${name}" not found in namespace "${namespace}"`);
  }

  /**
   * Why the function's new pods cannot run, if they cannot: their image cannot be pulled (it does
   * not exist, or the registry refuses it), or no node takes them (constraints no node meets).
   * Watched until a new pod has pulled its image and been placed, within `admitWithinMs`; a pod
   * still pulling then is given the benefit of the doubt.
   */
  async #refusal(spec: FunctionDeployment, namespace: string): Promise<string | undefined> {
    const deadline = Date.now() + this.#admitWithinMs;
    while (Date.now() < deadline) {
      let pods;
      try {
        pods = await this.#core.listNamespacedPod({
          namespace,
          labelSelector: `${FaasFunctionLabel}=${spec.service}`,
        });
      } catch {
        return undefined; // not knowable now: the deployment stands
      }
      // Pods of this image: a replica of the previous version that runs it proves it pullable.
      const fresh = pods.items.filter((pod) => pod.spec?.containers[0]?.image === spec.image);
      for (const pod of fresh) {
        const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
        if (waiting?.reason && pullFailures.has(waiting.reason)) {
          return `image "${spec.image}" cannot be pulled (${waiting.reason}${waiting.message ? `: ${shortened(waiting.message)}` : ''})`;
        }
        const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
        if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
          return `no node can run it (${shortened(scheduled.message ?? 'unschedulable')}): check its constraints and requests`;
        }
        const status = pod.status?.containerStatuses?.[0];
        if (status?.imageID || status?.state?.running || status?.state?.terminated)
          return undefined;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return undefined;
  }

  /** Until the Deployment is gone (its pods stopped), within 60 s. */
  async #gone(name: string, namespace: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      try {
        await this.#apps.readNamespacedDeployment({ name, namespace });
      } catch (error) {
        if (isNotFound(error)) return;
        throw kubeError(`cannot read "${name}"`, error);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
