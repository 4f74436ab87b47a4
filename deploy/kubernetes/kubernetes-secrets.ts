import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { NotFoundError, ValidationError } from '../../core/errors.js';
import type { Secret } from '../../core/function-types.js';
import type { SecretStore } from '../../core/provider.js';
import { assertDnsSubdomain } from '../../core/function-name.js';
import { managedSecretLabel } from './function-objects.js';
import { isNotFound, kubeError } from './kube-errors.js';

/**
 * Secrets as Kubernetes Secrets, as faas-netes keeps them: one Secret per secret, its value under
 * a key of its own name (what a function's projected volume maps to
 * /var/openfaas/secrets/<name>), labelled `app.kubernetes.io/managed-by=openfaas`. Only those are
 * listed, changed or removed: the namespace's other Secrets are not fnbus's.
 */
export class KubernetesSecrets implements SecretStore {
  readonly #core: CoreV1Api;
  readonly #namespaceOf: (namespace?: string) => string;

  constructor(core: CoreV1Api, namespaceOf: (namespace?: string) => string) {
    this.#core = core;
    this.#namespaceOf = namespaceOf;
  }

  async list(namespace?: string): Promise<Secret[]> {
    const ns = this.#namespaceOf(namespace);
    try {
      const secrets = await this.#core.listNamespacedSecret({
        namespace: ns,
        labelSelector: `${managedSecretLabel.key}=${managedSecretLabel.value}`,
      });
      return secrets.items
        .map((secret) => ({ name: secret.metadata?.name ?? '', namespace: ns }))
        .sort((a, b) => a.name.localeCompare(b.name));
    } catch (error) {
      throw kubeError(`cannot list the secrets of namespace "${ns}"`, error);
    }
  }

  async create(secret: Secret): Promise<void> {
    const ns = this.#namespaceOf(secret.namespace);
    try {
      await this.#core.createNamespacedSecret({ namespace: ns, body: this.#object(secret, ns) });
    } catch (error) {
      throw kubeError(`cannot create secret "${secret.name}"`, error);
    }
  }

  async update(secret: Secret): Promise<void> {
    const ns = this.#namespaceOf(secret.namespace);
    await this.#managed(secret.name, ns);
    try {
      await this.#core.replaceNamespacedSecret({
        name: secret.name,
        namespace: ns,
        body: this.#object(secret, ns),
      });
    } catch (error) {
      throw kubeError(`cannot update secret "${secret.name}"`, error);
    }
  }

  async remove(name: string, namespace?: string): Promise<void> {
    const ns = this.#namespaceOf(namespace);
    await this.#managed(name, ns);
    try {
      await this.#core.deleteNamespacedSecret({ name, namespace: ns });
    } catch (error) {
      throw kubeError(`cannot remove secret "${name}"`, error);
    }
  }

  /** The names of `names` that are not secrets of fnbus in `namespace`. */
  async missing(names: string[], namespace: string): Promise<string[]> {
    if (names.length === 0) return [];
    const present = new Set((await this.list(namespace)).map((secret) => secret.name));
    return names.filter((name) => !present.has(name));
  }

  /** NotFoundError unless `name` is a Secret fnbus manages in `namespace`. */
  async #managed(name: string, namespace: string): Promise<V1Secret> {
    try {
      const secret = await this.#core.readNamespacedSecret({ name, namespace });
      if (secret.metadata?.labels?.[managedSecretLabel.key] !== managedSecretLabel.value) {
        throw new NotFoundError(`no secret "${name}" in namespace "${namespace}"`);
      }
      return secret;
    } catch (error) {
      if (isNotFound(error))
        throw new NotFoundError(`no secret "${name}" in namespace "${namespace}"`);
      throw kubeError(`cannot read secret "${name}"`, error);
    }
  }

  #object(secret: Secret, namespace: string): V1Secret {
    assertDnsSubdomain(secret.name, 'secret name');
    if (secret.value === undefined && secret.rawValue === undefined) {
      throw new ValidationError(`secret "${secret.name}" has no value or rawValue`);
    }
    const data =
      secret.rawValue !== undefined
        ? secret.rawValue
        : Buffer.from(secret.value ?? '').toString('base64');
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: secret.name,
        namespace,
        labels: { [managedSecretLabel.key]: managedSecretLabel.value },
      },
      data: { [secret.name]: data },
    };
  }
}
