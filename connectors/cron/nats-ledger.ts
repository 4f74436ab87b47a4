import { JetStreamApiCodes, JetStreamApiError, jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { digest, type FiringLedger } from './firing-ledger.js';

/** How long a claim is kept in the claims bucket (its TTL): far longer than any clock skew. */
const claimsTtlMs = 3600_000;

/**
 * Cron replicas sharing one NATS server: a claim is a KV create (only one replica's succeeds)
 * in a bucket whose entries expire after an hour; the last firings are kept in another bucket.
 */
export class NatsLedger implements FiringLedger {
  readonly #url: string;
  readonly #name: string;
  #ready: Promise<{ nc: NatsConnection; claims: KV; last: KV }> | undefined;

  constructor(url: string, name = 'fnbus-cron') {
    this.#url = url;
    this.#name = name;
  }

  async claim(key: string, _ttlMs: number): Promise<boolean> {
    const { claims } = await this.#connected();
    try {
      await claims.create(digest(key), '1');
      return true;
    } catch (error) {
      // Created already: another replica claimed the slot.
      const taken =
        error instanceof JetStreamApiError &&
        (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
          error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
      if (taken) return false;
      throw error;
    }
  }

  async lastFired(schedule: string): Promise<number | undefined> {
    const { last } = await this.#connected();
    const entry = await last.get(digest(schedule));
    return entry?.operation === 'PUT' ? Number(entry.string()) : undefined;
  }

  async markFired(schedule: string, slotMs: number): Promise<void> {
    const { last } = await this.#connected();
    await last.put(digest(schedule), String(slotMs));
  }

  async close(): Promise<void> {
    const ready = await this.#ready?.catch(() => undefined);
    await ready?.nc.close();
  }

  #connected() {
    this.#ready ??= (async () => {
      const nc = await connect({
        servers: this.#url.split(','),
        maxReconnectAttempts: -1,
        noAsyncTraces: true,
      });
      const kvm = new Kvm(jetstream(nc));
      const claims = await kvm.create(`${this.#name}-claims`, { history: 1, ttl: claimsTtlMs });
      const last = await kvm.create(`${this.#name}-last`, { history: 1 });
      return { nc, claims, last };
    })().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }
}
