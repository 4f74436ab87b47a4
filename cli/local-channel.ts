import type { MessagePort } from 'node:worker_threads';

/**
 * The part of a `MessagePort` that the replica leases and their invoker use: a worker thread's
 * port, or one end of a `localChannel` on the main thread.
 */
export type MessageEndpoint = Pick<MessagePort, 'on' | 'postMessage' | 'close'>;

/**
 * Two connected endpoints within one thread: what one posts reaches the other's listeners on a
 * later microtask, as is (no copy, no thread hop), so that main-thread callers (the connectors of
 * `fnbus up`) use the replica leases as the worker thread does, at a fraction of the cost.
 */
export function localChannel(): [MessageEndpoint, MessageEndpoint] {
  const listeners: [((value: unknown) => void)[], ((value: unknown) => void)[]] = [[], []];
  let closed = false;
  const end = (mine: 0 | 1) => ({
    // Only 'message' is ever listened to.
    on(_event: string, listener: (value: unknown) => void) {
      listeners[mine].push(listener);
      return this;
    },
    postMessage(value: unknown) {
      if (closed) return;
      queueMicrotask(() => {
        if (closed) return;
        for (const listener of listeners[1 - mine]!) listener(value);
      });
    },
    close() {
      closed = true;
    },
  });
  // The shape MessagePort's overloads ask for; a local end takes only what the leases send.
  return [end(0) as unknown as MessageEndpoint, end(1) as unknown as MessageEndpoint];
}
