import { mkdir, rename, rm, stat, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors.js';
import type { Secret } from '../../core/function-types.js';
import { assertDnsSubdomain, isDnsSubdomain } from '../../core/function-name.js';
import type { SecretStore } from '../../core/provider.js';
import { readdirIfExists } from './read-dir.js';
import { onDisk } from './storage-error.js';

/**
 * Secrets as files in `<stateDir>/secrets/` (mode 0600), one per secret, named after it. Values
 * never leave the store through `list`; functions get copies (see `materialize`).
 */
export class FileSecretStore implements SecretStore {
  readonly #dir: string;
  readonly #namespace: string;
  #tmpCounter = 0;

  constructor(stateDir: string, namespace: string) {
    this.#dir = join(stateDir, 'secrets');
    this.#namespace = namespace;
  }

  async list(namespace?: string): Promise<Secret[]> {
    if (!this.#ours(namespace)) return [];
    const names = await onDisk('cannot list the secrets', () => readdirIfExists(this.#dir));
    return names
      .filter((name) => !name.startsWith('.')) // a write in progress (see #write)
      .sort()
      .map((name) => ({ name, namespace: this.#namespace }));
  }

  async create(secret: Secret): Promise<void> {
    this.#check(secret);
    if (await this.exists(secret.name)) {
      throw new ConflictError(`secret "${secret.name}" already exists`);
    }
    await this.#write(secret);
  }

  async update(secret: Secret): Promise<void> {
    this.#check(secret);
    if (!(await this.exists(secret.name))) {
      throw new NotFoundError(`secret "${secret.name}" not found`);
    }
    await this.#write(secret);
  }

  async remove(name: string, namespace?: string): Promise<void> {
    assertDnsSubdomain(name, 'secret name');
    if (!this.#ours(namespace) || !(await this.exists(name))) {
      throw new NotFoundError(`secret "${name}" not found`);
    }
    await onDisk(`cannot remove secret "${name}"`, () =>
      rm(join(this.#dir, name), { force: true }),
    );
  }

  async exists(name: string): Promise<boolean> {
    if (!isDnsSubdomain(name)) return false; // never a path outside the folder
    try {
      return (await stat(join(this.#dir, name))).isFile();
    } catch {
      return false;
    }
  }

  /**
   * Copies the named secrets into `target` (replacing what was there), as OpenFaaS mounts them
   * at /var/openfaas/secrets/<name>. A missing secret is a ValidationError.
   */
  async materialize(names: readonly string[], target: string): Promise<void> {
    const missing: string[] = [];
    for (const name of names) if (!(await this.exists(name))) missing.push(name);
    if (missing.length > 0) {
      throw new ValidationError(`secrets not found: ${missing.join(', ')}`);
    }
    await onDisk('cannot copy secrets', async () => {
      await rm(target, { recursive: true, force: true });
      await mkdir(target, { recursive: true, mode: 0o700 });
      for (const name of names) await copyFile(join(this.#dir, name), join(target, name));
    });
  }

  #ours(namespace: string | undefined): boolean {
    return namespace === undefined || namespace === '' || namespace === this.#namespace;
  }

  #check(secret: Secret): void {
    assertDnsSubdomain(secret.name, 'secret name');
    if (!this.#ours(secret.namespace)) {
      throw new ValidationError(`namespace "${secret.namespace}" does not exist`);
    }
    if (secret.value === undefined && secret.rawValue === undefined) {
      throw new ValidationError(`secret "${secret.name}" has no value`);
    }
  }

  #write(secret: Secret): Promise<void> {
    return onDisk(`cannot write secret "${secret.name}"`, () => this.#writeFile(secret));
  }

  async #writeFile(secret: Secret): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const bytes =
      secret.rawValue !== undefined
        ? Buffer.from(secret.rawValue, 'base64')
        : Buffer.from(secret.value ?? '', 'utf8');
    const file = join(this.#dir, secret.name);
    // A leading dot: no secret name has one, so a temporary file is never taken for a secret.
    const tmp = join(this.#dir, `.${secret.name}.${++this.#tmpCounter}.tmp`);
    await writeFile(tmp, bytes, { mode: 0o600 });
    await rename(tmp, file);
  }
}
