/** Calls per function (`name.namespace`), for `invocationCount` in the function list. */
export class InvocationCounter {
  readonly #counts = new Map<string, number>();

  add(fullName: string): void {
    this.#counts.set(fullName, (this.#counts.get(fullName) ?? 0) + 1);
  }

  get(fullName: string): number {
    return this.#counts.get(fullName) ?? 0;
  }
}
