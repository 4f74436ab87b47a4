import { alertReplicas, scaleRules } from '../core/function-rules.js';
import { joinFunctionName } from '../core/function-name.js';
import type { FunctionStatus } from '../core/function-types.js';
import type { Logger } from '../core/logger.js';
import type { Provider } from '../core/provider.js';
import type { AutoscaleSettings } from './config.js';
import type { GatewayMetrics } from './metrics.js';

export type AlertStatus = 'firing' | 'resolved';

/**
 * Applies one alert to one function, as OpenFaaS's gateway does for AlertManager's webhook:
 * the replicas of `alertReplicas` (core/function-rules.ts), and no call to the provider when they
 * are the count it has. Shared by `POST /system/alert` and the built-in autoscaler. Returns the
 * new count, or undefined when there is no such function (OpenFaaS skips it).
 */
export async function scaleOnAlert(
  provider: Provider,
  name: string,
  namespace: string,
  status: AlertStatus,
  known?: FunctionStatus,
): Promise<number | undefined> {
  const fn = known ?? (await provider.get(name, namespace));
  if (!fn) return undefined;
  const current = fn.replicas ?? 0;
  const wanted = alertReplicas(fn, status, current);
  if (wanted !== current) await provider.scale(name, wanted, namespace);
  return wanted;
}

/** What the autoscaler keeps of one function between two evaluations. */
interface Watch {
  /** [time, calls answered 200] samples, oldest first, spanning the window. */
  samples: [number, number][];
  /** When the rule started to hold; undefined while it does not. */
  pendingSince: number | undefined;
  firing: boolean;
  /** When a `firing` was last applied (repeated each window while it fires, as AlertManager). */
  firedAt: number;
  /** When this function was last seen to gain replicas from zero, or first seen. */
  awakeSince: number;
  replicas: number;
}

/**
 * The gateway's own autoscaler: OpenFaaS's APIHighInvocationRate rule evaluated from the gateway's
 * counters every `intervalMs` (the rate of calls answered 200 over `windowMs` above `rate`, held
 * `forMs`: firing; below: resolved), each transition applied by `scaleOnAlert` as an alert would
 * be; and the idler: a function labelled `com.openfaas.scale.zero=true`, replicas above zero, no
 * call started or ended for its `com.openfaas.scale.zero-duration` (else `zeroDurationMs`) and
 * none in flight or held for a replica, is scaled to 0. The in-flight count is read just before the scale, with no wait
 * between, so a call that started is never cut (OpenFaaS's faas#1410).
 */
export class Autoscaler {
  readonly #provider: Provider;
  readonly #metrics: GatewayMetrics;
  readonly #namespaces: () => Promise<string[]>;
  readonly #settings: AutoscaleSettings;
  readonly #logger: Logger | undefined;
  readonly #watches = new Map<string, Watch>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(deps: {
    provider: Provider;
    metrics: GatewayMetrics;
    namespaces: () => Promise<string[]>;
    settings: AutoscaleSettings;
    logger?: Logger;
  }) {
    this.#provider = deps.provider;
    this.#metrics = deps.metrics;
    this.#namespaces = deps.namespaces;
    this.#settings = deps.settings;
    this.#logger = deps.logger;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      // One evaluation at a time: a slow provider skips ticks rather than piling them up.
      this.#running ??= this.evaluate()
        .catch((error: unknown) =>
          this.#logger?.warn({ err: error }, 'autoscaler: evaluation failed'),
        )
        .finally(() => (this.#running = undefined));
    }, this.#settings.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One evaluation of every function (the timer's; callable on its own). */
  async evaluate(now = Date.now()): Promise<void> {
    const seen = new Set<string>();
    for (const namespace of await this.#namespaces()) {
      for (const fn of await this.#provider.list(namespace)) {
        const ns = fn.namespace ?? namespace;
        const key = joinFunctionName(fn.name, ns);
        seen.add(key);
        try {
          await this.#evaluateOne(fn, ns, key, now);
        } catch (error) {
          this.#logger?.warn({ err: error, function: key }, 'autoscaler: cannot scale');
        }
      }
    }
    for (const key of this.#watches.keys()) if (!seen.has(key)) this.#watches.delete(key);
  }

  async #evaluateOne(fn: FunctionStatus, namespace: string, key: string, now: number) {
    const replicas = fn.replicas ?? 0;
    let watch = this.#watches.get(key);
    if (!watch) {
      watch = {
        samples: [],
        pendingSince: undefined,
        firing: false,
        firedAt: 0,
        awakeSince: now,
        replicas,
      };
      this.#watches.set(key, watch);
    }
    if (watch.replicas === 0 && replicas > 0) watch.awakeSince = now;
    watch.replicas = replicas;
    const series = this.#metrics.peek(key);
    const { windowMs, forMs, rate: threshold } = this.#settings;

    if (this.#settings.enabled) {
      watch.samples.push([now, series?.succeeded ?? 0]);
      // Keep one sample at or before the window's start, so the rate spans all of it.
      while (
        watch.samples.length > 2 &&
        (watch.samples[1] as [number, number])[0] <= now - windowMs
      ) {
        watch.samples.shift();
      }
      const [firstAt, firstCount] = watch.samples[0] as [number, number];
      const rate =
        ((series?.succeeded ?? 0) - firstCount) / (Math.max(now - firstAt, windowMs) / 1000);
      if (rate > threshold) {
        watch.pendingSince ??= now;
        const due = now - watch.pendingSince >= forMs;
        if (due && (!watch.firing || now - watch.firedAt >= windowMs)) {
          watch.firing = true;
          watch.firedAt = now;
          await this.#apply(fn, namespace, key, 'firing', rate);
        }
      } else {
        watch.pendingSince = undefined;
        if (watch.firing) {
          watch.firing = false;
          await this.#apply(fn, namespace, key, 'resolved', rate);
        }
      }
    }

    if (this.#settings.idler && replicas > 0) {
      const { zero, zeroDurationMs } = scaleRules(fn).rules;
      if (!zero) return;
      const idleMs = zeroDurationMs ?? this.#settings.zeroDurationMs;
      const lastCall = Math.max(series?.lastCallAt ?? 0, watch.awakeSince);
      // Read with no await before the scale: a call that started is never cut.
      if (now - lastCall >= idleMs && Date.now() - (series?.lastCallAt ?? 0) >= idleMs) {
        if ((series?.inFlight ?? 0) > 0 || this.#metrics.waitingFor(key) > 0) return;
        await this.#provider.scale(fn.name, 0, namespace);
        watch.replicas = 0;
        watch.firing = false;
        watch.pendingSince = undefined;
        this.#metrics.scaled(key, 'idle');
        this.#logger?.info({ function: key, idleMs }, 'idler: scaled to zero');
      }
    }
  }

  async #apply(
    fn: FunctionStatus,
    namespace: string,
    key: string,
    status: AlertStatus,
    rate: number,
  ): Promise<void> {
    const replicas = await scaleOnAlert(this.#provider, fn.name, namespace, status, fn);
    if (replicas !== undefined && replicas !== (fn.replicas ?? 0)) {
      this.#metrics.scaled(key, status === 'firing' ? 'load' : 'load_resolved');
      this.#logger?.info(
        { function: key, status, rate: Number(rate.toFixed(2)), from: fn.replicas, to: replicas },
        'autoscaler: scaled',
      );
      this.#watches.get(key)!.replicas = replicas;
    }
  }
}
