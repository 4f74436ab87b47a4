import { type KV } from '@nats-io/kv';
import { headers } from '@nats-io/transport-node';
import { isStale } from './stored-call.js';
import type { StreamWriter } from './stream-writer.js';

/** nats-server's header for a compare-and-set on a subject's last sequence (a KV revision). */
const expectedRevision = 'Nats-Expected-Last-Subject-Sequence';

/**
 * A KV bucket whose writes go straight to its stream's subjects (`$KV.<bucket>.<key>`) through a
 * `StreamWriter`, exactly as the KV client writes them (the same subjects, the same
 * `Nats-Expected-Last-Subject-Sequence` and `KV-Operation` headers), at a fraction of the
 * client's cost per write. Reads go through the KV client (`kv`). Keys must already be valid KV
 * keys (`callKey`, hex digests): they are not checked again.
 */
export class RecordBucket {
  readonly kv: KV;
  readonly #writer: StreamWriter;
  readonly #prefix: string;

  constructor(kv: KV, bucket: string, writer: StreamWriter) {
    this.kv = kv;
    this.#writer = writer;
    this.#prefix = `$KV.${bucket}.`;
  }

  /** Writes `value` whatever is there; resolves with its revision. */
  async put(key: string, value: string): Promise<number> {
    return (await this.#writer.publish(this.#prefix + key, value)).seq;
  }

  /** Writes `value` if `key` is at `revision` (0: has never been written). */
  async update(key: string, value: string, revision: number): Promise<number> {
    const expect = headers();
    expect.set(expectedRevision, String(revision));
    return (await this.#writer.publish(this.#prefix + key, value, expect)).seq;
  }

  /**
   * Writes `value` if `key` holds nothing (never written, or deleted): as `KV.create`, a
   * deletion marker's revision is taken as the one to replace.
   */
  async create(key: string, value: string): Promise<number> {
    try {
      return await this.update(key, value, 0);
    } catch (error) {
      if (!isStale(error)) throw error;
      const entry = await this.kv.get(key);
      if (entry?.operation !== 'DEL' && entry?.operation !== 'PURGE') throw error;
      return await this.update(key, value, entry.revision);
    }
  }

  /** Deletes `key` (leaves a deletion marker), if at `revision` when one is given. */
  async delete(key: string, revision?: number): Promise<number> {
    const marker = headers();
    marker.set('KV-Operation', 'DEL');
    if (revision !== undefined) marker.set(expectedRevision, String(revision));
    return (await this.#writer.publish(this.#prefix + key, new Uint8Array(0), marker)).seq;
  }
}
