import { UnavailableError } from '../core/errors.js';
import type { Queue } from '../core/queue.js';

/** The methods that put new work in a queue. */
const newWork = new Set<PropertyKey>(['enqueue', 'redrive', 'bury']);

/**
 * `queue`, refusing new work (enqueue, redrive, bury) with a 503 while `refusal()` gives a
 * reason: a hub that is stopping queues nothing more, even for a request already under way.
 * Every other method is the queue's own (a proxy: whatever methods the seam grows).
 */
export function refusingQueue(queue: Queue, refusal: () => string | undefined): Queue {
  return new Proxy(queue, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (!newWork.has(property)) return method.bind(target);
      return (...args: unknown[]) => {
        const reason = refusal();
        if (reason) {
          return Promise.reject(new UnavailableError(`the queue takes no new calls: ${reason}`));
        }
        return method.apply(target, args);
      };
    },
  });
}
