import type { QueueRequest } from './queue-types.js';

/** What the queue knows about this delivery of a message. */
export interface Delivery {
  /** 1 on the first delivery, counting every delivery of this message, redeliveries included. */
  attempt: number;
  /**
   * True when an earlier delivery was never settled (the worker died or its lease ran out), so
   * the function may already have run with this message. A retry the handler asked for is not a
   * redelivery.
   */
  redelivered: boolean;
}

/**
 * How a handler settles a message. Retry policy (how many attempts, what backoff, which statuses)
 * lives in the worker, which knows the function; a queue only carries the decision out.
 * - `ack`: done, remove the message (the function may have failed: that result was delivered).
 * - `retry`: deliver again, after `delayMs` if given, else at the queue's own pace.
 * - `dead-letter`: stop trying and keep the message where an operator can inspect or replay it.
 */
export type Settlement =
  | { outcome: 'ack' }
  | { outcome: 'retry'; reason: string; delayMs?: number }
  | { outcome: 'dead-letter'; reason: string };

/**
 * Called once per delivery. Resolving with nothing is an `ack`. A rejection is a bug, not a
 * decision, and counts as `retry`, so that no message is lost to a thrown error.
 */
export type DeliveryHandler = (req: QueueRequest, delivery: Delivery) => Promise<Settlement | void>;

/**
 * The async path's queue, behind which sit the embedded queue (on disk), BullMQ (Redis) and
 * NATS JetStream. One contract test suite runs against all of them.
 */
export interface Queue {
  /**
   * Stores the message durably before resolving: once it resolves, the gateway may answer 202.
   * `callId` is the request's `X-Call-Id` header when set, else one the queue made.
   */
  enqueue(req: QueueRequest): Promise<{ callId: string }>;
  /**
   * Hands messages to `handle` until `signal` aborts, then stops taking new ones, waits for the
   * handlers in flight to settle, and resolves. How many run at once is the queue's setting.
   */
  consume(handle: DeliveryHandler, signal: AbortSignal): Promise<void>;
}
