import type { Queue } from '../core/queue.js';

/**
 * `queue`, calling `wake()` whenever it gets work to run: a call queued (not a duplicate) or
 * dead letters redriven. `fnbus up` starts its worker thread so, on its embedded queue, which
 * nothing but its own gateway writes to.
 */
export function wakingQueue(queue: Queue, wake: () => void): Queue {
  return {
    async enqueue(req, options) {
      const enqueued = await queue.enqueue(req, options);
      if (!enqueued.duplicate) wake();
      return enqueued;
    },
    async redrive(filter) {
      const ids = await queue.redrive(filter);
      if (ids.length > 0) wake();
      return ids;
    },
    consume: (handle, options, signal) => queue.consume(handle, options, signal),
    status: (callId) => queue.status(callId),
    cancel: (callId) => queue.cancel(callId),
    deadLetters: (query) => queue.deadLetters(query),
    deadLetter: (callId) => queue.deadLetter(callId),
    purge: (filter) => queue.purge(filter),
    bury: (call) => queue.bury(call),
    stats: () => queue.stats(),
    close: () => queue.close(),
  };
}
