/** One line a replica wrote, as the ring keeps it. */
export interface LogLine {
  instance: string;
  /** When the provider read the line: RFC 3339 (ISO 8601 in UTC). */
  timestamp: string;
  /** The same instant, for `since` comparisons. */
  at: number;
  text: string;
}

type Listener = (line: LogLine) => void;

/**
 * The most recent lines of one function's replicas, bounded so that a chatty function cannot
 * grow the hub's memory. Followers get every line pushed after they subscribed.
 */
export class LogRing {
  readonly #capacity: number;
  readonly #lines: LogLine[] = [];
  readonly #listeners = new Set<Listener>();

  constructor(capacity = 1000) {
    this.#capacity = Math.max(1, capacity);
  }

  push(instance: string, text: string, at = Date.now()): void {
    const line: LogLine = { instance, text, at, timestamp: new Date(at).toISOString() };
    this.#lines.push(line);
    // Cheaper than a circular index at this size, and keeps snapshot() a plain slice.
    if (this.#lines.length > this.#capacity)
      this.#lines.splice(0, this.#lines.length - this.#capacity);
    for (const listener of this.#listeners) listener(line);
  }

  /** The kept lines, oldest first. */
  snapshot(): LogLine[] {
    return this.#lines.slice();
  }

  /** Calls `listener` for every line pushed from now on; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Ends every follower (the function was removed). */
  close(): void {
    for (const listener of this.#listeners) listener(closedLine);
    this.#listeners.clear();
  }
}

/** The sentinel `close()` hands followers: not a real line. */
export const closedLine: LogLine = Object.freeze({ instance: '', timestamp: '', at: 0, text: '' });
