import type { CallState, Settlement } from '../core/queue.js';
import type { QueueRequest } from '../core/queue-types.js';

/** The request's own X-Call-Id (the gateway always sets one), whatever its case. */
export function callIdOf(req: QueueRequest): string | undefined {
  for (const [name, values] of Object.entries(req.Header)) {
    if (name.toLowerCase() === 'x-call-id' && values[0]) return values[0];
  }
  return undefined;
}

/** The state an `ack` or `dead-letter` leaves a call in. */
export function toSettledState(
  settlement: Extract<Settlement, { outcome: 'ack' | 'dead-letter' }>,
): CallState {
  if (settlement.outcome === 'dead-letter') return 'dead-lettered';
  const status = settlement.attempt.record.status;
  return status !== undefined && status >= 200 && status < 300 ? 'succeeded' : 'failed';
}
