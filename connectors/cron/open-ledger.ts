import { ConfigError } from '../../core/errors.js';
import { MemoryLedger, type FiringLedger } from './firing-ledger.js';

/**
 * The ledger named by `url`: `redis://…` or `nats://…` for replicas sharing the slots, else this
 * process's own (its last firings kept in `file` when given). Loads only the client it needs.
 */
export async function openLedger(url: string | undefined, file?: string): Promise<FiringLedger> {
  if (!url || url === 'local' || url === 'memory') return new MemoryLedger(file);
  if (/^rediss?:\/\//.test(url)) {
    const { RedisLedger } = await import('./redis-ledger.js');
    return new RedisLedger(url);
  }
  if (url.startsWith('nats://')) {
    const { NatsLedger } = await import('./nats-ledger.js');
    return new NatsLedger(url);
  }
  throw new ConfigError([`lease_url: "${url}" is not redis://, nats:// or local`]);
}
