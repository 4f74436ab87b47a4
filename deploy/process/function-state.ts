import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FunctionDeployment } from '../../core/function-types.js';
import { readdirIfExists } from './read-dir.js';

/** What the provider keeps of one function across restarts. */
export interface FunctionRecord {
  spec: FunctionDeployment;
  /** Desired replicas. */
  replicas: number;
  /** RFC 3339. */
  createdAt: string;
}

/**
 * Deployed functions as one JSON file each in `<stateDir>/functions/`. Every write goes to a
 * temporary file first and is renamed over the old one, so a crash never leaves a half-written
 * record: a reader sees the old version or the new one.
 */
export class FunctionState {
  readonly #dir: string;
  #tmpCounter = 0;

  constructor(stateDir: string) {
    this.#dir = join(stateDir, 'functions');
  }

  async save(record: FunctionRecord): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    const file = this.#file(record.spec.service);
    const tmp = `${file}.${process.pid}.${++this.#tmpCounter}.tmp`;
    await writeFile(tmp, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, file);
  }

  async remove(name: string): Promise<void> {
    await rm(this.#file(name), { force: true });
  }

  /** Every saved record; unreadable files are reported through `onError` and skipped. */
  async loadAll(
    onError: (file: string, error: unknown) => void = () => {},
  ): Promise<FunctionRecord[]> {
    const names = await readdirIfExists(this.#dir);
    const records: FunctionRecord[] = [];
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      const file = join(this.#dir, name);
      try {
        const record = JSON.parse(await readFile(file, 'utf8')) as FunctionRecord;
        if (typeof record.spec?.service !== 'string' || typeof record.replicas !== 'number') {
          throw new Error('not a function record');
        }
        records.push(record);
      } catch (error) {
        onError(file, error);
      }
    }
    return records;
  }

  #file(name: string): string {
    return join(this.#dir, `${name}.json`);
  }
}
