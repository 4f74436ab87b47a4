import { setTimeout as sleep } from 'node:timers/promises';
import { NotFoundError, UnavailableError } from '../core/errors.js';
import { joinFunctionName } from '../core/function-name.js';
import { wakeReplicas } from '../core/function-rules.js';
import type { Provider } from '../core/provider.js';
import { Backoff } from '../core/retry-policy.js';

export interface ScaleFromZeroOptions {
  /** How long a held call waits for a ready replica before it is answered 503. */
  waitMs: number;
  /** Calls held at once, over every function: one more is answered 503 at once. */
  maxHeld: number;
  /** The first pause between two looks at the function; doubled (jittered) up to maxPollMs. */
  firstPollMs?: number;
  maxPollMs?: number;
}

/** One function's wake-up: every call held for it waits on the same loop. */
interface Wake {
  ready: Promise<void>;
}

/**
 * Holds calls to a function that has no ready replica until one is, as OpenFaaS's gateway does:
 * the first call scales it to its minimum (core/function-rules.ts, at least 1) if it is at zero,
 * and one loop per function, however many calls are held, looks for a ready replica with a
 * doubling pause (core/retry-policy.ts's Backoff: firstPollMs, 2 ms, to maxPollMs, 50 ms, each
 * jittered between half and all: a replica is seen within 50 ms of being ready, at 20 to 40 looks
 * a second for the function). All its calls are released together once one
 * is ready, or failed together (UnavailableError) once waitMs has passed; at most maxHeld wait.
 */
export class ScaleFromZero {
  readonly #provider: Provider;
  readonly #options: Required<ScaleFromZeroOptions>;
  readonly #waking = new Map<string, Wake>();
  #held = 0;

  constructor(provider: Provider, options: ScaleFromZeroOptions) {
    this.#provider = provider;
    // A forked function is ready in about 15 ms: the first looks come soon, later ones back off.
    this.#options = { firstPollMs: 2, maxPollMs: 50, ...options };
  }

  /** Calls held now (for tests and diagnostics). */
  get held(): number {
    return this.#held;
  }

  /**
   * Resolves once the function has a ready replica (the caller then resolves one as usual);
   * NotFoundError if there is no such function, UnavailableError if none gets ready in time, if
   * it cannot be scaled up, or if too many calls are held already.
   */
  async wait(name: string, namespace: string | undefined): Promise<void> {
    if (this.#held >= this.#options.maxHeld) {
      throw new UnavailableError(`too many calls waiting for ${name} to start`);
    }
    const key = joinFunctionName(name, namespace);
    let wake = this.#waking.get(key);
    if (!wake) {
      const ready = this.#wake(name, namespace).finally(() => this.#waking.delete(key));
      wake = { ready };
      this.#waking.set(key, wake);
    }
    this.#held += 1;
    try {
      await wake.ready;
    } finally {
      this.#held -= 1;
    }
  }

  async #wake(name: string, namespace: string | undefined): Promise<void> {
    const deadline = Date.now() + this.#options.waitMs;
    const status = await this.#provider.get(name, namespace);
    if (!status) {
      throw new NotFoundError(`function not found: ${joinFunctionName(name, namespace)}`);
    }
    if ((status.replicas ?? 0) === 0) {
      try {
        await this.#provider.scale(name, wakeReplicas(status), namespace);
      } catch (error) {
        // At a cap (or any refusal): the caller gets "no replica", not the operator's 4xx.
        if (error instanceof NotFoundError) throw error;
        throw new UnavailableError(`cannot start ${name}`, { cause: error });
      }
    }
    const pauses = new Backoff({
      minWaitMs: this.#options.firstPollMs,
      maxWaitMs: this.#options.maxPollMs,
    });
    for (;;) {
      try {
        await this.#provider.resolve(name, namespace);
        return;
      } catch (error) {
        if (!(error instanceof UnavailableError)) throw error;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new UnavailableError(`no replica of ${name} got ready in time`);
      await sleep(Math.min(pauses.next(), left));
    }
  }
}
