import { JetStreamApiError } from '@nats-io/jetstream';
import {
  ClosedConnectionError,
  NoRespondersError,
  TimeoutError,
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';

/** A JetStream publish acknowledgement: the stream and sequence that keep the message. */
export interface PubAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

interface Pending {
  subject: string;
  resolve: (answer: Answer) => void;
  reject: (error: unknown) => void;
  /** When the request gives up waiting for its acknowledgement (ms since the epoch). */
  deadline: number;
}

interface Outgoing {
  subject: string;
  data: Uint8Array | string;
  headers: MsgHdrs | undefined;
  reply: string;
}

/**
 * Acknowledged JetStream writes (a publish to a stream's subject, answered by the server's
 * PubAck; a message delete, answered by the API) as plain core NATS publishes with a reply
 * subject, all answered on one subscription.
 *
 * It is what `js.publish` does, less its cost per write: nats.js makes a request object, a timer
 * and, when a request ends, an Error (with its stack) for every write. Here a write is a map
 * entry; one timer a second fails those unanswered after `timeoutMs`. Writes made in one turn of
 * the event loop (and the acks handed to `later`) go out together, in one socket write, once the
 * turn is over. Errors are nats.js's own types: the server's refusals a `JetStreamApiError` with
 * its code (a compare-and-set that lost, a stream at its limit), no stream a
 * `NoRespondersError`, no answer a `TimeoutError`, a closed connection a `ClosedConnectionError`.
 */
export class StreamWriter {
  readonly #nc: NatsConnection;
  readonly #timeoutMs: number;
  readonly #inbox = createInbox();
  readonly #pending = new Map<string, Pending>();
  readonly #subscription: Subscription;
  readonly #sweeper: NodeJS.Timeout;
  #next = 0;
  #outgoing: Outgoing[] = [];
  #later: (() => void)[] = [];
  #scheduled = false;

  constructor(nc: NatsConnection, timeoutMs = 5000) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    this.#subscription = nc.subscribe(`${this.#inbox}.*`, {
      callback: (_error, msg) => this.#answer(msg),
    });
    this.#sweeper = setInterval(() => this.#expire(), 1000).unref();
    void nc.closed().then(() => this.#close());
  }

  /** Publishes `data` on `subject` and resolves with the stream's acknowledgement. */
  async publish(subject: string, data: Uint8Array | string, headers?: MsgHdrs): Promise<PubAck> {
    const answer = await this.#request(subject, data, headers);
    if (!answer.stream || answer.seq === undefined) {
      throw new Error(`not a JetStream acknowledgement: ${JSON.stringify(answer)}`);
    }
    return { stream: answer.stream, seq: answer.seq, duplicate: !!answer.duplicate };
  }

  /**
   * Removes `stream`'s message at `seq` (JetStream's message delete, not erased): true when it
   * was there, false when it was not (deleted, or replaced in a bucket that keeps one revision).
   */
  async deleteMessage(stream: string, seq: number): Promise<boolean> {
    try {
      await this.#request(
        `$JS.API.STREAM.MSG.DELETE.${stream}`,
        JSON.stringify({ seq, no_erase: true }),
        undefined,
      );
      return true;
    } catch (error) {
      if (error instanceof JetStreamApiError && notThere.includes(error.code)) return false;
      throw error;
    }
  }

  #request(
    subject: string,
    data: Uint8Array | string,
    headers: MsgHdrs | undefined,
  ): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      if (this.#nc.isClosed()) {
        reject(new ClosedConnectionError());
        return;
      }
      const token = (this.#next++).toString(36);
      this.#pending.set(token, {
        subject,
        resolve,
        reject,
        deadline: Date.now() + this.#timeoutMs,
      });
      this.#outgoing.push({ subject, data, headers, reply: `${this.#inbox}.${token}` });
      this.#schedule();
    });
  }

  /** Runs `send` (an ack, a nak) with the next batch of writes, in the same socket write. */
  later(send: () => void): void {
    this.#later.push(send);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    const outgoing = this.#outgoing;
    const later = this.#later;
    this.#outgoing = [];
    this.#later = [];
    for (const out of outgoing) {
      try {
        this.#nc.publish(out.subject, out.data, { reply: out.reply, headers: out.headers });
      } catch (error) {
        const token = out.reply.slice(this.#inbox.length + 1);
        this.#pending.get(token)?.reject(error);
        this.#pending.delete(token);
      }
    }
    for (const send of later) {
      try {
        send();
      } catch {
        // the connection is closed: the server redelivers after the ack wait
      }
    }
  }

  #answer(msg: Msg): void {
    const token = msg.subject.slice(this.#inbox.length + 1);
    const pending = this.#pending.get(token);
    if (!pending) return; // answered after it timed out
    this.#pending.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      pending.reject(new NoRespondersError(pending.subject));
      return;
    }
    let answer: Answer;
    try {
      answer = msg.json();
    } catch (error) {
      pending.reject(error);
      return;
    }
    if (answer.error) pending.reject(new JetStreamApiError(answer.error));
    else pending.resolve(answer);
  }

  #expire(): void {
    const now = Date.now();
    // Deadlines grow with insertion order: stop at the first one still waiting.
    for (const [token, pending] of this.#pending) {
      if (pending.deadline > now) break;
      this.#pending.delete(token);
      pending.reject(new TimeoutError());
    }
  }

  #close(): void {
    clearInterval(this.#sweeper);
    for (const pending of this.#pending.values()) pending.reject(new ClosedConnectionError());
    this.#pending.clear();
    try {
      this.#subscription.unsubscribe();
    } catch {
      // closed with its connection
    }
  }
}

/** The server's answer: a PubAck, an API response, or an error. */
interface Answer {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: ApiError;
}

/**
 * What a message delete answers for a message that is not there: "sequence not found" (10043)
 * or, from the store, "no message found" / "stream store EOF" (10057).
 */
const notThere = [10043, 10057];

interface ApiError {
  code: number;
  err_code: number;
  description: string;
}
