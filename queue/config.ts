import { EnvReader, fnbusName, type Env } from '../core/config.js';
import type { CallbackOptions } from './callback.js';
import { defaultRetryPolicy, readRetryPolicy, type RetryPolicy } from '../core/retry-policy.js';
import { queueDefaults } from './call-records.js';

export interface WorkerConfig {
  /** The gateway the worker calls functions through (standalone `fnbus queue-worker`). */
  gatewayUrl: string;
  /** Calls in flight at once in this worker. */
  maxInflight: number;
  retry: RetryPolicy;
  /** A call waiting longer than this is dead-lettered, not run; 0: no limit. */
  maxAgeMs: number;
  /** Longest wait for a function's answer, when its own timeout is not known. */
  upstreamTimeoutMs: number;
  /**
   * The deadline of each attempt (`call_timeout`); 0: the function's own timeout (else
   * upstream_timeout) plus 30 s for it to start.
   */
  callTimeoutMs: number;
  callback: CallbackOptions;
  /** Where a standalone worker serves its Prometheus metrics. */
  metricsPort: number;
  /** How long a killed worker's call waits before another worker gets it (BullMQ, JetStream). */
  ackWaitMs: number;
  /** How long an Idempotency-Key is remembered. */
  idempotencyWindowMs: number;
  /** How long a finished call's record answers /system/calls. */
  retentionMs: number;
  /**
   * Most calls waiting or running at once in the queue (`max_queued_calls`): past it an async
   * call is refused with 429. Unset: the backend's default for this machine (see openQueue).
   */
  maxQueuedCalls: number | undefined;
}

/** The cap on a shared queue (Redis, NATS) whose machine this process cannot see. */
export const sharedQueueMaxCalls = queueDefaults.maxQueuedCalls;

/**
 * The embedded queue's default cap, for a state folder with `freeBytes` free: as many calls as
 * half of that holds at 256 KiB each (a quarter of the largest async body), between 1,000 and
 * 100,000, so that a backlog cannot fill the disk the hub needs.
 */
export function localQueueMaxCalls(freeBytes: number): number {
  const fits = Math.floor(freeBytes / 2 / (256 * 1024));
  return Math.min(sharedQueueMaxCalls, Math.max(1_000, fits));
}

/**
 * The worker's settings, with OpenFaaS Pro's queue-worker names where it has one
 * (`max_inflight`, `max_retry_attempts`, `retry_http_codes`, `initial_retry_wait`,
 * `max_retry_wait`, `gateway_url`, `upstream_timeout`, `ack_wait`); every problem at once.
 */
export function readWorkerConfig(env: Env): Readonly<WorkerConfig> {
  const read = new EnvReader(env);
  return read.done({
    gatewayUrl: read.string('gateway_url', 'http://127.0.0.1:8080'),
    maxInflight: read.integer('max_inflight', 64, { min: 1, max: 10_000 }),
    retry: readRetryPolicy(read, defaultRetryPolicy),
    maxAgeMs: read.durationMs(fnbusName('max_age'), 24 * 3600_000),
    upstreamTimeoutMs: read.durationMs('upstream_timeout', 60_000),
    callTimeoutMs: read.durationMs(fnbusName('call_timeout'), 0),
    callback: {
      attempts: read.integer(fnbusName('callback_attempts'), 5, { min: 1, max: 100 }),
      firstWaitMs: read.durationMs(fnbusName('callback_retry_wait'), 1000),
      timeoutMs: read.durationMs(fnbusName('callback_timeout'), 30_000),
    },
    metricsPort: read.integer(fnbusName('metrics_port'), 8081, { min: 0, max: 65535 }),
    ackWaitMs: read.durationMs('ack_wait', queueDefaults.leaseMs),
    idempotencyWindowMs: read.durationMs(
      fnbusName('idempotency_window'),
      queueDefaults.idempotencyWindowMs,
    ),
    retentionMs: read.durationMs(fnbusName('call_retention'), queueDefaults.retentionMs),
    maxQueuedCalls: read.raw(...fnbusName('max_queued_calls'))
      ? read.integer(fnbusName('max_queued_calls'), sharedQueueMaxCalls, {
          min: 1,
          max: 1_000_000_000,
        })
      : undefined,
  });
}
