import type { Redis } from 'ioredis';

/** The commands a batch gathers: one member (or score and member) per write, many per command. */
export type BatchedCommand = 'zadd' | 'zrem' | 'sadd';

/** A turn's writes of one command to one key. */
interface Entry {
  command: BatchedCommand;
  key: string;
  args: (string | number)[];
  reply: Promise<unknown>;
  settle: (send: () => Promise<unknown>) => void;
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

/**
 * Writes of one member each (`ZADD key score member`, `ZREM key member`, `SADD key member`)
 * gathered over a turn of the event loop and sent, on one connection, as one command per command
 * and key (`ZADD key s1 m1 s2 m2 …`): one command a turn instead of one a call, for each costs
 * its client a command object, a system call and a reply to parse, and Redis a dispatch. The
 * commands go out in the order their keys were first written in the turn. A failed command fails
 * every write it carried.
 */
export class TurnBatch {
  readonly #client: Redis;
  #entries = new Map<string, Entry>();
  #sent: Promise<void> | undefined;
  #markSent: (() => void) | undefined;

  constructor(client: Redis) {
    this.#client = client;
  }

  write(command: BatchedCommand, key: string, ...args: (string | number)[]): BatchedWrite {
    if (this.#sent === undefined) {
      this.#sent = new Promise<void>((resolve) => (this.#markSent = resolve));
      setImmediate(() => this.#flush());
    }
    const id = `${command} ${key}`;
    let entry = this.#entries.get(id);
    if (entry === undefined) {
      let settle!: Entry['settle'];
      const reply = new Promise<unknown>((resolve, reject) => {
        // Sent at once; should ioredis throw rather than reject, the reply rejects all the same.
        settle = (send) => void new Promise<unknown>((sent) => sent(send())).then(resolve, reject);
      });
      // A writer that does not wait for the reply handles its error itself (or not at all): the
      // batch never leaves a rejection unhandled.
      reply.catch(() => undefined);
      entry = { command, key, args: [], reply, settle };
      this.#entries.set(id, entry);
    }
    for (const arg of args) entry.args.push(arg);
    return { sent: this.#sent, stored: entry.reply };
  }

  #flush(): void {
    const entries = this.#entries;
    const markSent = this.#markSent;
    this.#entries = new Map();
    this.#sent = undefined;
    this.#markSent = undefined;
    for (const { command, key, args, settle } of entries.values()) {
      settle(() => this.#send(command, key, args));
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
