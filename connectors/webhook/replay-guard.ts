/**
 * Remembers delivery ids for a window, so that a webhook delivered twice (a sender's retry, a
 * replay) is taken once. In memory: one process's view (the embedded hub, or one connector).
 */
export class ReplayGuard {
  readonly #windowMs: number;
  /** Delivery id → when it stops being remembered; in insertion order, so oldest first. */
  readonly #seen = new Map<string, number>();

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /** True the first time `id` is seen within the window (and remembers it); false after. */
  firstTime(id: string, now = Date.now()): boolean {
    for (const [old, until] of this.#seen) {
      if (until > now) break;
      this.#seen.delete(old);
    }
    if (this.#seen.has(id)) return false;
    this.#seen.set(id, now + this.#windowMs);
    return true;
  }

  /** Forgets `id`: its delivery failed, so the sender's retry must be taken. */
  forget(id: string): void {
    this.#seen.delete(id);
  }
}
