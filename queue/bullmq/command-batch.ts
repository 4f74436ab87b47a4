import type { Redis } from 'ioredis';

/** The commands a batch gathers: one member (or score and member) per write, many per command. */
export type BatchedCommand = 'zadd' | 'zrem' | 'sadd';

/** A turn's writes of one command to one key. */
interface Entry {
  command: BatchedCommand;
  key: string;
  args: (string | number)[];
  written: BatchedWrite;
  resolve: (reply: unknown) => void;
  reject: (error: unknown) => void;
}

/** What a write is told: when its command is sent, and its reply. */
export interface BatchedWrite {
  /**
   * Resolves once the command is written to the connection: whatever is sent on that connection
   * afterwards reaches Redis after it.
   */
  sent: Promise<void>;
  /** The command's reply (shared by every write of the turn to that key). */
  stored: Promise<unknown>;
}

/** Told of a failed command, once, with what it carried. */
export type BatchLost = (error: unknown, args: (string | number)[]) => void;

/**
 * Writes of one member each (`ZADD key score member`, `ZREM key member`, `SADD key member`)
 * gathered over a turn of the event loop and sent, on one connection, as one command per command
 * and key (`ZADD key s1 m1 s2 m2 …`): one command a turn instead of one a call, for each costs
 * its client a command object, a system call and a reply to parse, and Redis a dispatch. The
 * commands go out in the order their keys were first written in the turn. A failed command fails
 * every write it carried, and is told to `lost` (if given) once: a writer that does not wait for
 * the reply need not handle its error.
 */
export class CommandBatch {
  readonly #client: Redis;
  readonly #lost: BatchLost | undefined;
  #entries = new Map<string, Entry>();
  #sent: Promise<void> | undefined;
  #markSent: (() => void) | undefined;

  constructor(client: Redis, lost?: BatchLost) {
    this.#client = client;
    this.#lost = lost;
  }

  write(command: BatchedCommand, key: string, ...args: (string | number)[]): BatchedWrite {
    if (this.#sent === undefined) {
      this.#sent = new Promise<void>((resolve) => (this.#markSent = resolve));
      setImmediate(() => this.#flush());
    }
    const id = `${command} ${key}`;
    let entry = this.#entries.get(id);
    if (entry === undefined) {
      let resolve!: Entry['resolve'];
      let reject!: Entry['reject'];
      const stored = new Promise<unknown>((ok, fail) => ((resolve = ok), (reject = fail)));
      // Handled here (and told to `lost`): the batch never leaves a rejection unhandled.
      stored.catch(() => undefined);
      entry = { command, key, args, written: { sent: this.#sent, stored }, resolve, reject };
      this.#entries.set(id, entry);
    } else {
      for (const arg of args) entry.args.push(arg);
    }
    return entry.written;
  }

  #flush(): void {
    const entries = this.#entries;
    const markSent = this.#markSent;
    this.#entries = new Map();
    this.#sent = undefined;
    this.#markSent = undefined;
    for (const entry of entries.values()) {
      // Sent at once; should ioredis throw rather than reject, the reply rejects all the same.
      new Promise<unknown>((sent) => sent(this.#send(entry.command, entry.key, entry.args))).then(
        entry.resolve,
        (error: unknown) => {
          entry.reject(error);
          this.#lost?.(error, entry.args);
        },
      );
    }
    markSent?.();
  }

  #send(command: BatchedCommand, key: string, args: (string | number)[]): Promise<unknown> {
    switch (command) {
      case 'zadd':
        return this.#client.zadd(key, ...args);
      case 'zrem':
        return this.#client.zrem(key, ...args);
      case 'sadd':
        return this.#client.sadd(key, ...args);
    }
  }
}
