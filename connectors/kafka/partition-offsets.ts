/**
 * One partition's records in hand, in offset order, and how far they are done without a gap:
 * the offset a commit may name. Records finish in any order (several run at once); the commit
 * moves only past a record once it and every earlier one of the partition are done, so a crash
 * redelivers every record not known done (at least once), never skips one.
 */
export class PartitionOffsets {
  /** Offsets taken and not yet passed by the commit point, in the order taken. */
  readonly #pending: bigint[] = [];
  readonly #done = new Set<bigint>();

  /** Notes a record as taken; offsets come in increasing order. */
  take(offset: string): void {
    this.#pending.push(BigInt(offset));
  }

  /**
   * Marks a taken record done; the last offset now done with none pending before it (what to
   * resolve: the commit names the next), or undefined when the oldest record still runs.
   */
  finish(offset: string): string | undefined {
    this.#done.add(BigInt(offset));
    let passed: bigint | undefined;
    while (this.#pending.length > 0 && this.#done.has(this.#pending[0]!)) {
      passed = this.#pending.shift()!;
      this.#done.delete(passed);
    }
    return passed === undefined ? undefined : String(passed);
  }

  /** Records taken and not passed yet. */
  get inHand(): number {
    return this.#pending.length;
  }
}
