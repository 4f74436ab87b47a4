import { Redis } from 'ioredis';
import { digest, type FiringLedger } from './firing-ledger.js';

/** Cron replicas sharing one Redis: a claim is `SET NX PX`, the last firings plain keys. */
export class RedisLedger implements FiringLedger {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(url: string, prefix = 'fnbus:cron') {
    this.#redis = new Redis(url, { maxRetriesPerRequest: 3 });
    // Reconnects on its own; a claim that fails meanwhile is a firing skipped, and logged.
    this.#redis.on('error', () => {});
    this.#prefix = prefix;
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const won = await this.#redis.set(
      `${this.#prefix}:claim:${digest(key)}`,
      '1',
      'PX',
      ttlMs,
      'NX',
    );
    return won === 'OK';
  }

  async lastFired(schedule: string): Promise<number | undefined> {
    const value = await this.#redis.get(`${this.#prefix}:last:${digest(schedule)}`);
    return value === null ? undefined : Number(value);
  }

  async markFired(schedule: string, slotMs: number): Promise<void> {
    await this.#redis.set(`${this.#prefix}:last:${digest(schedule)}`, String(slotMs));
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
