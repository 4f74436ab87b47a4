import { createHash } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';

/**
 * Where cron replicas agree on who fires a slot, and remember the last slot fired (for catching
 * up after downtime). `claim` is atomic across every replica sharing the ledger: for one key,
 * exactly one caller gets true within `ttlMs`.
 */
export interface FiringLedger {
  claim(key: string, ttlMs: number): Promise<boolean>;
  /** The last slot fired for a schedule, in ms since the epoch. */
  lastFired(schedule: string): Promise<number | undefined>;
  markFired(schedule: string, slotMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * The ledger of one process (the embedded hub, or a single connector): claims in memory, the
 * last firings kept in a JSON file when given one, so that catch-up works across restarts.
 */
export class MemoryLedger implements FiringLedger {
  readonly #claims = new Map<string, number>();
  #last: Map<string, number> | undefined;
  readonly #file: string | undefined;
  #writing: Promise<void> = Promise.resolve();
  /** The write not started yet, which later firings join. */
  #flush: Promise<void> | undefined;

  constructor(file?: string) {
    this.#file = file;
  }

  claim(key: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    for (const [held, until] of this.#claims) if (until <= now) this.#claims.delete(held);
    if (this.#claims.has(key)) return Promise.resolve(false);
    this.#claims.set(key, now + ttlMs);
    return Promise.resolve(true);
  }

  async lastFired(schedule: string): Promise<number | undefined> {
    return (await this.#load()).get(schedule);
  }

  async markFired(schedule: string, slotMs: number): Promise<void> {
    const last = await this.#load();
    if ((last.get(schedule) ?? 0) >= slotMs) return;
    last.set(schedule, slotMs);
    if (!this.#file) return;
    // Firings of one moment share one write (the latest state), each whole: aside, then renamed.
    const file = this.#file;
    this.#flush ??= this.#writing.then(async () => {
      this.#flush = undefined;
      await writeFile(`${file}.tmp`, JSON.stringify(Object.fromEntries(last)));
      await rename(`${file}.tmp`, file);
    });
    this.#writing = this.#flush;
    await this.#flush;
  }

  async close(): Promise<void> {
    await this.#writing.catch(() => {});
  }

  async #load(): Promise<Map<string, number>> {
    if (this.#last) return this.#last;
    let saved: Record<string, number> = {};
    if (this.#file) {
      try {
        saved = JSON.parse(await readFile(this.#file, 'utf8')) as Record<string, number>;
      } catch {
        saved = {}; // none yet, or unreadable: nothing to catch up from
      }
    }
    this.#last ??= new Map(Object.entries(saved).filter(([, at]) => Number.isFinite(at)));
    return this.#last;
  }
}

/** A shared ledger's key for any schedule or slot text: fixed-size hex. */
export function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
