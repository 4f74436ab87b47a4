import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors.js';
import { assertDnsLabel, isDnsLabel } from '../../core/function-name.js';
import type { FunctionNamespace, Secret } from '../../core/function-types.js';
import type { NamespaceStore, SecretStore } from '../../core/provider.js';
import { FileSecretStore } from './file-secret-store.js';
import { FunctionState } from './function-state.js';
import { readdirIfExists } from './read-dir.js';
import { onDisk } from './storage-error.js';

/** One namespace's own folders: its functions' records, its secrets, its replicas' files. */
export interface NamespaceSpace {
  namespace: FunctionNamespace;
  /** The folder it keeps `functions/`, `secrets/` and `run/` in. */
  root: string;
  state: FunctionState;
  secrets: FileSecretStore;
}

/**
 * The process provider's namespaces, kept apart on disk: the default one in the state folder
 * itself (as before namespaces came), every other in `<stateDir>/namespaces/<name>/`, described
 * by its `namespace.json`. Functions and secrets of one namespace never meet another's.
 */
export class FileNamespaceStore implements NamespaceStore {
  readonly defaultName: string;
  readonly #stateDir: string;
  readonly #spaces = new Map<string, NamespaceSpace>();
  /** Whether a namespace still holds functions (a namespace in use is not removed). */
  readonly #inUse: (name: string) => boolean;

  constructor(stateDir: string, defaultName: string, inUse: (name: string) => boolean) {
    assertDnsLabel(defaultName, 'namespace');
    this.#stateDir = stateDir;
    this.defaultName = defaultName;
    this.#inUse = inUse;
    this.#spaces.set(defaultName, this.#space({ name: defaultName }, stateDir));
  }

  /** Reads the namespaces saved in the state folder; one unreadable is reported and skipped. */
  async load(onError: (name: string, error: unknown) => void): Promise<void> {
    const names = await readdirIfExists(join(this.#stateDir, 'namespaces'));
    for (const name of names.sort()) {
      if (!isDnsLabel(name) || this.#spaces.has(name)) continue;
      try {
        const saved = JSON.parse(
          await readFile(join(this.#root(name), 'namespace.json'), 'utf8'),
        ) as FunctionNamespace;
        this.#spaces.set(name, this.#space({ ...saved, name }, this.#root(name)));
      } catch (error) {
        onError(name, error);
      }
    }
  }

  /** Every namespace's name, the default first. */
  names(): string[] {
    return [this.defaultName, ...[...this.#spaces.keys()].filter((n) => n !== this.defaultName)];
  }

  /** The namespace `name` names ('' or absent: the default); undefined when there is none. */
  space(name: string | undefined): NamespaceSpace | undefined {
    return this.#spaces.get(name || this.defaultName);
  }

  get(name: string): Promise<FunctionNamespace | undefined> {
    const found = this.#spaces.get(name)?.namespace;
    return Promise.resolve(found && { ...found });
  }

  async create(namespace: FunctionNamespace): Promise<void> {
    assertDnsLabel(namespace.name, 'namespace');
    if (this.#spaces.has(namespace.name)) {
      throw new ConflictError(`namespace "${namespace.name}" already exists`);
    }
    const space = this.#space(namespace, this.#root(namespace.name));
    await this.#save(space);
    this.#spaces.set(namespace.name, space);
  }

  async update(namespace: FunctionNamespace): Promise<void> {
    const space = this.#spaces.get(namespace.name);
    if (!space) throw new NotFoundError(`namespace "${namespace.name}" not found`);
    if (namespace.name === this.defaultName) {
      throw new ValidationError(`namespace "${namespace.name}" is the default: it has no labels`);
    }
    const updated = { ...space, namespace: pick(namespace) };
    await this.#save(updated);
    this.#spaces.set(namespace.name, updated);
  }

  async remove(name: string): Promise<void> {
    const space = this.#spaces.get(name);
    if (!space) throw new NotFoundError(`namespace "${name}" not found`);
    if (name === this.defaultName) {
      throw new ConflictError(`namespace "${name}" is the default: it cannot be removed`);
    }
    if (this.#inUse(name)) {
      throw new ConflictError(`namespace "${name}" holds functions: remove them first`);
    }
    this.#spaces.delete(name);
    await onDisk(`cannot remove namespace "${name}"`, () =>
      rm(space.root, { recursive: true, force: true }),
    );
  }

  /** Secrets of every namespace, each in its own folder. */
  readonly secrets: SecretStore = {
    list: async (namespace) => (await this.space(namespace)?.secrets.list()) ?? [],
    create: (secret) => this.#secretsOf(secret).create({ ...secret, namespace: undefined }),
    update: (secret) => this.#secretsOf(secret).update({ ...secret, namespace: undefined }),
    remove: (name, namespace) => {
      const space = this.space(namespace);
      if (!space) return Promise.reject(new NotFoundError(`secret "${name}" not found`));
      return space.secrets.remove(name);
    },
  };

  #secretsOf(secret: Secret): FileSecretStore {
    const space = this.space(secret.namespace);
    if (!space) throw new ValidationError(`namespace "${secret.namespace}" does not exist`);
    return space.secrets;
  }

  #space(namespace: FunctionNamespace, root: string): NamespaceSpace {
    return {
      namespace: pick(namespace),
      root,
      state: new FunctionState(root),
      secrets: new FileSecretStore(root, namespace.name),
    };
  }

  #root(name: string): string {
    return join(this.#stateDir, 'namespaces', name);
  }

  async #save(space: NamespaceSpace): Promise<void> {
    const { name } = space.namespace;
    await onDisk(`cannot save namespace "${name}"`, async () => {
      await mkdir(space.root, { recursive: true, mode: 0o700 });
      const file = join(space.root, 'namespace.json');
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, `${JSON.stringify(space.namespace, null, 2)}\n`, { mode: 0o600 });
      await rename(tmp, file);
    });
  }
}

/** Name, labels and annotations only (what OpenFaaS's FunctionNamespace has). */
function pick({ name, labels, annotations }: FunctionNamespace): FunctionNamespace {
  return { name, ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) };
}
