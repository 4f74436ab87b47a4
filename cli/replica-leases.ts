import type { MessageEndpoint } from './local-channel.js';
import { Counter, type Registry } from 'prom-client';
import { joinFunctionName, splitFunctionName } from '../core/function-name.js';
import type { ProcessProvider } from '../deploy/process/process-provider.js';
import type { GatewayMetrics } from '../gateway/metrics.js';
import type { WatchdogLease } from '../watchdog/watchdog.js';

/**
 * Asked by the worker thread (cli/replica-invoker.ts) of the hub's main thread. Both ways, a
 * message is an array: what one side had to say in one turn of its event loop, sent at once.
 */
export type ToLeases =
  | {
      type: 'lease';
      id: number;
      /** `name` or `name.namespace`, as the call names it. */
      fn: string;
      method: string;
      /** The path (and query) the function sees. */
      path: string;
      callId: string;
      /** The call's X-Timeout header, if any. */
      timeout?: string;
      bodyBytes: number;
    }
  | { type: 'done'; id: number; status: number };

/** The main thread's answers, one per `lease`. */
export type FromLeases =
  | { type: 'granted'; id: number; url: string; timeoutMs: number; timeoutStatus: number }
  | { type: 'refused'; id: number; status: number; message: string }
  /** No ready replica here (none yet, scaled to zero, unknown): through the gateway's route. */
  | { type: 'gateway'; id: number };

export interface ReplicaLeasesOptions {
  /** The replicas: those of `fnbus up`'s process provider, which serve in this process. */
  provider: Pick<ProcessProvider, 'resolveLocal'>;
  /** The gateway's own series: a call made this way counts as one through `/function/*`. */
  metrics: GatewayMetrics;
  /** Where `queue_worker_direct_calls_total` goes (the hub's /metrics). */
  registry: Registry;
  functionNamespace: string;
  /** The gateway's upstream_timeout: the longest a call may take (502 past it). */
  upstreamTimeoutMs: number;
}

interface Granted {
  lease: WatchdogLease;
  series: ReturnType<GatewayMetrics['function']>;
  startedAt: number;
}

/**
 * The hub's side of the queue worker's direct calls: the worker thread asks, over a MessagePort,
 * where to send a call; this finds a ready replica as the gateway does, takes the call into the
 * replica's max_inflight (its watchdog's lease) and the gateway's metrics, and answers the address
 * past the watchdog's proxy (the function's own process in http mode). The worker sends the call
 * itself and says when it is over. So the call crosses one HTTP exchange rather than two (worker
 * → gateway → function), while the limits and metrics stay where they live, on this thread.
 * Without a ready replica, the worker is sent to the gateway's route: scale from zero, 404 and 503
 * stay the gateway's.
 */
export class ReplicaLeases {
  readonly #options: ReplicaLeasesOptions;
  readonly #direct: Counter<'function_name'>;

  constructor(options: ReplicaLeasesOptions) {
    this.#options = options;
    this.#direct = new Counter({
      name: 'queue_worker_direct_calls_total',
      help: "Async calls the hub's queue worker sent to a replica directly, not through /function",
      labelNames: ['function_name'],
      registers: [options.registry],
    });
  }

  /**
   * Answers the leases asked over `port` until it closes. The returned function releases every
   * lease still held through it: call it when the thread is gone (a killed worker's calls must
   * not hold replica slots for good).
   */
  serve(port: MessageEndpoint): () => void {
    const held = new Map<number, Granted>();
    const end = (id: number, status: number) => {
      const granted = held.get(id);
      if (!granted) return;
      held.delete(id);
      granted.lease.release(status);
      granted.series.finish(status, (performance.now() - granted.startedAt) / 1000);
    };
    // A message crossing threads costs tens of µs on each side, whatever it holds: the worker
    // sends a turn's asks together, and they are answered together.
    port.on('message', (batch: ToLeases[]) => {
      const answers: FromLeases[] = [];
      for (const message of batch) {
        if (message.type === 'done') end(message.id, message.status);
        else answers.push(this.#lease(message, held));
      }
      if (answers.length > 0) port.postMessage(answers);
    });
    return () => {
      // Cut: the gateway counts a call whose caller went away with what it answered, here none.
      for (const id of [...held.keys()]) end(id, 502);
      port.close();
    };
  }

  #lease(ask: Extract<ToLeases, { type: 'lease' }>, held: Map<number, Granted>): FromLeases {
    const { provider, metrics, functionNamespace, upstreamTimeoutMs } = this.#options;
    const { id } = ask;
    const { name, namespace } = splitFunctionName(ask.fn, functionNamespace);
    let replica: ReturnType<typeof provider.resolveLocal>;
    try {
      replica = provider.resolveLocal(name, namespace);
    } catch {
      return { type: 'gateway', id };
    }
    const fullName = joinFunctionName(name, namespace);
    const series = metrics.function(fullName);
    series.start();
    this.#direct.labels(fullName).inc();
    const lease = replica.lease({
      method: ask.method,
      path: ask.path,
      callId: ask.callId,
      timeout: ask.timeout,
      bodyBytes: ask.bodyBytes,
      hostTimeoutMs: upstreamTimeoutMs,
    });
    if ('status' in lease) {
      series.finish(lease.status, 0);
      return { type: 'refused', id, status: lease.status, message: lease.message };
    }
    held.set(id, { lease, series, startedAt: performance.now() });
    const { url, timeoutMs, timeoutStatus } = lease;
    return { type: 'granted', id, url, timeoutMs, timeoutStatus };
  }
}
