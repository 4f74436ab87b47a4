import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors.js';
import { assertDnsLabel, isDnsLabel } from '../../core/function-name.js';
import type { FunctionNamespace } from '../../core/function-types.js';
import type { NamespaceStore, SecretStore } from '../../core/provider.js';
import { FileSecretStore } from './file-secret-store.js';
import { FunctionState } from './function-state.js';
import { readdirIfExists } from './read-dir.js';
import { SerialChanges } from './serial-changes.js';
import { onDisk } from './storage-error.js';

/** A namespace folder being removed: not a DNS label, so never read as a namespace. */
const removingPrefix = '.removing-';

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
  /** Changes of one namespace (create, update, remove) and writes into it take turns. */
  readonly #changes = new SerialChanges();

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
      if (name.startsWith(removingPrefix)) {
        // A removal that a stop cut short: finished now.
        await rm(join(this.#stateDir, 'namespaces', name), { recursive: true, force: true }).catch(
          () => undefined, // tried again at the next start
        );
        continue;
      }
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

  create(namespace: FunctionNamespace): Promise<void> {
    assertDnsLabel(namespace.name, 'namespace');
    return this.#changes.run(namespace.name, async () => {
      if (this.#spaces.has(namespace.name)) {
        throw new ConflictError(`namespace "${namespace.name}" already exists`);
      }
      const space = this.#space(namespace, this.#root(namespace.name));
      await this.#save(space);
      this.#spaces.set(namespace.name, space);
    });
  }

  update(namespace: FunctionNamespace): Promise<void> {
    return this.#changes.run(namespace.name, async () => {
      const space = this.#spaces.get(namespace.name);
      if (!space) throw new NotFoundError(`namespace "${namespace.name}" not found`);
      if (namespace.name === this.defaultName) {
        throw new ValidationError(`namespace "${namespace.name}" is the default: it has no labels`);
      }
      const updated = { ...space, namespace: pick(namespace) };
      await this.#save(updated);
      this.#spaces.set(namespace.name, updated);
    });
  }

  remove(name: string): Promise<void> {
    return this.#changes.run(name, async () => {
      const space = this.#spaces.get(name);
      if (!space) throw new NotFoundError(`namespace "${name}" not found`);
      if (name === this.defaultName) {
        throw new ConflictError(`namespace "${name}" is the default: it cannot be removed`);
      }
      if (this.#inUse(name)) {
        throw new ConflictError(`namespace "${name}" holds functions: remove them first`);
      }
      // Moved aside first, in one step: a write still in flight into the namespace (a secret)
      // cannot make the folder's removal fail half-way, and the name is free at once.
      const removing = join(
        this.#stateDir,
        'namespaces',
        `${removingPrefix}${name}-${randomBytes(4).toString('hex')}`,
      );
      await onDisk(`cannot remove namespace "${name}"`, async () => {
        try {
          await rename(space.root, removing);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      });
      this.#spaces.delete(name);
      // The namespace is gone; its old folder goes now, or at the next start if this fails.
      await rm(removing, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
    });
  }

  /** Secrets of every namespace, each in its own folder. */
  readonly secrets: SecretStore = {
    list: async (namespace) => (await this.space(namespace)?.secrets.list()) ?? [],
    create: (secret) =>
      this.whileExists(secret.namespace, (space) =>
        space.secrets.create({ ...secret, namespace: undefined }),
      ),
    update: (secret) =>
      this.whileExists(secret.namespace, (space) =>
        space.secrets.update({ ...secret, namespace: undefined }),
      ),
    remove: (name, namespace) =>
      this.whileExists(
        namespace,
        (space) => space.secrets.remove(name),
        () => new NotFoundError(`secret "${name}" not found`),
      ),
  };

  /**
   * Runs `work` in a namespace that exists and stays while it runs: a removal of the namespace
   * waits for it (or it for the removal, and then finds no namespace: `missing`). Writes into a
   * namespace's folder go through here, so none lands in a folder being removed.
   */
  whileExists<T>(
    name: string | undefined,
    work: (space: NamespaceSpace) => Promise<T>,
    missing: () => Error = () => new ValidationError(`namespace "${name}" does not exist`),
  ): Promise<T> {
    const wanted = name || this.defaultName;
    const run = async () => {
      const space = this.#spaces.get(wanted);
      if (!space) throw missing();
      return work(space);
    };
    // The default namespace is never removed: its writes need not wait for one another.
    return wanted === this.defaultName ? run() : this.#changes.run(wanted, run);
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
