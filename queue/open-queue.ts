import { statfsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ValidationError } from '../core/errors.js';
import type { Queue } from '../core/queue.js';
import { localQueueMaxCalls, sharedQueueMaxCalls, type WorkerConfig } from './config.js';

/**
 * The queue a URL names: `redis://…` (BullMQ), `nats://…` (JetStream), or `local` / nothing (the
 * embedded queue in `<stateDir>/queue.db`). Each backend is loaded only when asked for, so a hub
 * on the local queue never loads a Redis or NATS client.
 */
export interface OpenQueueOptions {
  /**
   * How long a delivery stays with a worker that stopped answering (killed) before it is given
   * to another: BullMQ's lock duration, JetStream's ack wait. The local queue needs none.
   */
  leaseMs?: number;
  /**
   * The local queue only: also look for due calls this often, for a consumer in another thread
   * or process than the one enqueueing (no wake-up reaches it).
   */
  pollMs?: number;
  /** How long an Idempotency-Key is remembered (each backend's default: 24 h). */
  idempotencyWindowMs?: number;
  /** How long a finished call's record is kept (each backend's default: 24 h). */
  retentionMs?: number;
  /**
   * Most calls waiting or running at once (429 past it). Default: for the local queue, from the
   * state folder's free disk (`localQueueMaxCalls`); for Redis and NATS, 100,000.
   */
  maxQueuedCalls?: number;
}

export async function openQueue(
  url: string | undefined,
  stateDir: string,
  { leaseMs, pollMs, idempotencyWindowMs, retentionMs, maxQueuedCalls }: OpenQueueOptions = {},
): Promise<Queue> {
  const kept = {
    ...(idempotencyWindowMs ? { idempotencyWindowMs } : {}),
    ...(retentionMs ? { retentionMs } : {}),
    maxQueuedCalls: maxQueuedCalls ?? sharedQueueMaxCalls,
  };
  if (url === undefined || url === '' || url === 'local') {
    const { LocalQueue } = await import('./local/local-queue.js');
    const file = join(stateDir, 'queue.db');
    return new LocalQueue({
      file,
      ...kept,
      maxQueuedCalls: maxQueuedCalls ?? localQueueMaxCalls(freeBytes(dirname(file))),
      ...(pollMs ? { pollMs } : {}),
    });
  }
  const scheme = URL.canParse(url) ? new URL(url).protocol : '';
  if (scheme === 'redis:' || scheme === 'rediss:') {
    const { BullmqQueue } = await import('./bullmq/bullmq-queue.js');
    return new BullmqQueue({ url, ...kept, ...(leaseMs ? { leaseMs } : {}) });
  }
  if (scheme === 'nats:' || scheme === 'tls:') {
    const { NatsQueue } = await import('./nats/nats-queue.js');
    return new NatsQueue({ url, ...kept, ...(leaseMs ? { leaseMs } : {}) });
  }
  throw new ValidationError(
    `queue "${url}": use redis://host:port (BullMQ), nats://host:port (JetStream) or local`,
  );
}

/**
 * The queue settings of the worker's env (`ack_wait`, `idempotency_window`, `call_retention`,
 * `max_queued_calls`).
 */
export function queueOptions(config: WorkerConfig): OpenQueueOptions {
  return {
    leaseMs: config.ackWaitMs,
    idempotencyWindowMs: config.idempotencyWindowMs,
    retentionMs: config.retentionMs,
    ...(config.maxQueuedCalls === undefined ? {} : { maxQueuedCalls: config.maxQueuedCalls }),
  };
}

/** Free bytes where `dir` is (or would be: its nearest existing parent); 0 when unknown. */
function freeBytes(dir: string): number {
  for (let at = dir; ; at = dirname(at)) {
    try {
      const stats = statfsSync(at);
      return stats.bavail * stats.bsize;
    } catch {
      if (dirname(at) === at) return 0;
    }
  }
}
