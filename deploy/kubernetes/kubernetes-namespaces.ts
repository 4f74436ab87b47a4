import type { AppsV1Api, CoreV1Api, V1Namespace } from '@kubernetes/client-node';
import { ConflictError, NotFoundError } from '../../core/errors.js';
import { assertDnsLabel } from '../../core/function-name.js';
import type { FunctionNamespace, StringMap } from '../../core/function-types.js';
import type { NamespaceStore } from '../../core/provider.js';
import { FaasFunctionLabel } from '../../core/function-rules.js';
import { isNotFound, kubeError } from './kube-errors.js';

/** The annotation that makes a namespace one functions go to, as OpenFaaS marks them. */
const functionsAnnotation = { key: 'openfaas', value: '1' };

/**
 * Namespaces for functions: the default one, and those annotated `openfaas=1` (OpenFaaS's mark).
 * fnbus creates, changes and removes only namespaces that carry the mark; the default namespace
 * and any namespace holding functions are never removed.
 */
export class KubernetesNamespaces implements NamespaceStore {
  readonly #core: CoreV1Api;
  readonly #apps: AppsV1Api;
  readonly #default: string;

  constructor(core: CoreV1Api, apps: AppsV1Api, defaultNamespace: string) {
    this.#core = core;
    this.#apps = apps;
    this.#default = defaultNamespace;
  }

  /** The default namespace and every marked one; only the default when listing is not allowed. */
  async names(): Promise<string[]> {
    try {
      const all = await this.#core.listNamespace();
      const marked = all.items
        .filter(
          (ns) => ns.metadata?.annotations?.[functionsAnnotation.key] === functionsAnnotation.value,
        )
        .map((ns) => ns.metadata?.name ?? '');
      return [...new Set([this.#default, ...marked])].sort();
    } catch (error) {
      const status = kubeError('cannot list namespaces', error);
      if (status.status === 502) return [this.#default];
      throw status;
    }
  }

  async get(name: string): Promise<FunctionNamespace | undefined> {
    const ns = await this.#read(name);
    if (!ns || (name !== this.#default && !isMarked(ns))) return undefined;
    return shown(ns);
  }

  async create(namespace: FunctionNamespace): Promise<void> {
    assertDnsLabel(namespace.name, 'namespace');
    try {
      await this.#core.createNamespace({
        body: {
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: {
            name: namespace.name,
            labels: namespace.labels ?? {},
            annotations: marked(namespace.annotations),
          },
        },
      });
    } catch (error) {
      throw kubeError(`cannot create namespace "${namespace.name}"`, error);
    }
  }

  async update(namespace: FunctionNamespace): Promise<void> {
    const existing = await this.#read(namespace.name);
    if (!existing || !isMarked(existing)) {
      throw new NotFoundError(`namespace "${namespace.name}" is not one of fnbus's`);
    }
    existing.metadata = {
      ...existing.metadata,
      labels: namespace.labels ?? {},
      annotations: marked(namespace.annotations),
    };
    try {
      await this.#core.replaceNamespace({ name: namespace.name, body: existing });
    } catch (error) {
      throw kubeError(`cannot update namespace "${namespace.name}"`, error);
    }
  }

  async remove(name: string): Promise<void> {
    if (name === this.#default) {
      throw new ConflictError(`namespace "${name}" is the default one: it is never removed`);
    }
    const existing = await this.#read(name);
    if (!existing || !isMarked(existing)) {
      throw new NotFoundError(`namespace "${name}" is not one of fnbus's`);
    }
    let functions: number;
    try {
      functions = (
        await this.#apps.listNamespacedDeployment({
          namespace: name,
          labelSelector: FaasFunctionLabel,
        })
      ).items.length;
    } catch (error) {
      throw kubeError(`cannot list the functions of namespace "${name}"`, error);
    }
    if (functions > 0) {
      throw new ConflictError(
        `namespace "${name}" holds ${functions} functions: remove them first`,
      );
    }
    try {
      await this.#core.deleteNamespace({ name });
    } catch (error) {
      throw kubeError(`cannot remove namespace "${name}"`, error);
    }
  }

  async #read(name: string): Promise<V1Namespace | undefined> {
    try {
      return await this.#core.readNamespace({ name });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw kubeError(`cannot read namespace "${name}"`, error);
    }
  }
}

function isMarked(ns: V1Namespace): boolean {
  return ns.metadata?.annotations?.[functionsAnnotation.key] === functionsAnnotation.value;
}

function marked(annotations: StringMap | undefined): StringMap {
  return { ...(annotations ?? {}), [functionsAnnotation.key]: functionsAnnotation.value };
}

/** A namespace as the API shows it: without the mark, and without Kubernetes' own labels. */
function shown(ns: V1Namespace): FunctionNamespace {
  const { [functionsAnnotation.key]: _mark, ...annotations } = ns.metadata?.annotations ?? {};
  const { 'kubernetes.io/metadata.name': _name, ...labels } = ns.metadata?.labels ?? {};
  return { name: ns.metadata?.name ?? '', labels, annotations };
}
