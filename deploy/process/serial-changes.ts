/**
 * Changes of one thing (a function, a namespace) run one after the other, in the order they
 * came; changes of different things run side by side. A failed change does not stop the next.
 */
export class SerialChanges {
  readonly #last = new Map<string, Promise<void>>();

  run<T>(key: string, change: () => Promise<T>): Promise<T> {
    const result = (this.#last.get(key) ?? Promise.resolve()).then(change);
    const settled = result.then(
      () => {},
      () => {},
    );
    this.#last.set(key, settled);
    void settled.then(() => {
      if (this.#last.get(key) === settled) this.#last.delete(key);
    });
    return result;
  }
}
