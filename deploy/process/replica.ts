import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, ValidationError } from '../../core/errors.js';
import type { StringMap } from '../../core/function-types.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { readConfig, type WatchdogConfig } from '../../watchdog/config.js';
import { createJsonLogger } from '../../watchdog/json-logger.js';
import {
  Watchdog,
  type LeaseRefusal,
  type LeaseRequest,
  type WatchdogLease,
} from '../../watchdog/watchdog.js';
import { freePort } from './free-port.js';
import type { LaunchPlan } from './launch-plan.js';
import { safeReason } from './storage-error.js';

export interface ReplicaOptions {
  /** The replica's name in logs and `instance` filters, unique within its function. */
  instance: string;
  /** The spec version it runs: an update starts a newer generation beside the old one. */
  generation: number;
  plan: LaunchPlan;
  /** Environment given to every replica before the function's own (PATH and the like). */
  baseEnv: StringMap;
  /** Environment added after the function's own (e.g. FNBUS_SECRETS_PATH). */
  extraEnv: StringMap;
  /** The replica's own folder; its `tmp/` is the function's TMPDIR. Removed on stop. */
  workDir: string;
  /** Every line of the function's output and of its watchdog's log. */
  onLine: (instance: string, text: string) => void;
  /** Readiness changed (either way). */
  onReadyChange: (replica: Replica) => void;
  logger?: Logger;
  /** How often a ready replica's health is looked at again (a starting one: every 20ms). */
  healthIntervalMs?: number;
}

/**
 * The watchdog settings a replica runs with: the function's own, except what the host decides
 * (a loopback port of its own, no lock file, no metrics server, no health grace on stop: the
 * provider takes a replica out of the pool before stopping it). Throws a ValidationError naming
 * every bad variable, so a bad deploy is refused rather than crash-looping.
 */
export function replicaConfig(env: StringMap): Readonly<WatchdogConfig> {
  try {
    return readConfig({
      ...env,
      port: '0',
      metrics_port: '0',
      suppress_lock: 'true',
      healthcheck_interval: '0',
    });
  } catch (error) {
    if (error instanceof ConfigError) throw new ValidationError(error.message);
    throw error;
  }
}

/**
 * One replica of a function: a watchdog run as a library inside the hub, in front of the
 * function's process (started per call, or long-running in http mode and restarted with backoff
 * when it dies). The gateway hands it calls directly (serve); it also listens on a loopback
 * port, for anything that calls it over HTTP. Ready means its health check passes.
 */
export class Replica {
  readonly instance: string;
  readonly generation: number;
  readonly #options: ReplicaOptions & { healthIntervalMs: number; logger: Logger };
  #watchdog: Watchdog | undefined;
  #port = 0;
  #ready = false;
  #stopping = false;
  #running: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  readonly #stopSignal = new AbortController();

  constructor(options: ReplicaOptions) {
    this.instance = options.instance;
    this.generation = options.generation;
    this.#options = { healthIntervalMs: 1000, logger: silentLogger, ...options };
  }

  /** Live: the watchdog is healthy right now (its function process up, not stopping). */
  get ready(): boolean {
    return !this.#stopping && this.#watchdog?.healthy === true;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** The function's long-running process (http mode), if one runs. */
  get pid(): number | undefined {
    return this.#watchdog?.functionPid;
  }

  /** Why this replica can serve no call (its command cannot be started), if so. */
  get startProblem(): string | undefined {
    return this.#watchdog?.startProblem;
  }

  get restarts(): number {
    return this.#watchdog?.restarts ?? 0;
  }

  /** Serves one call in this process; the request's url is the path the function sees. */
  serve(req: IncomingMessage, res: ServerResponse, timeoutMs: number): void {
    (this.#watchdog as Watchdog).serve(req, res, timeoutMs);
  }

  /**
   * Where a host in this process sends one call over HTTP itself, past the watchdog's proxy (see
   * Watchdog.lease): the queue worker of `fnbus up` calls the function without a second exchange.
   */
  lease(request: LeaseRequest): WatchdogLease | LeaseRefusal {
    const watchdog = this.#watchdog;
    if (!watchdog || this.#stopping) return { status: 503, message: 'the replica is stopping' };
    return watchdog.lease(request);
  }

  start(): void {
    this.#running ??= this.#run().catch((error: unknown) => {
      // An errno error's message holds a path of the state folder: its code says enough.
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      this.#options.onLine(this.instance, `cannot start: ${reason}`);
      this.#options.logger.error({ reason, instance: this.instance }, 'replica failed');
    });
  }

  /** Drains calls in flight (within write_timeout), then stops the function's process. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    this.#stopSignal.abort();
    this.#setReady(false);
    await this.#running;
    await this.#watchdog?.stop();
    // Never rejects: a stop runs unawaited (a retired replica), and its folder is not worth a crash.
    await rm(this.#options.workDir, { recursive: true, force: true }).catch((error: unknown) =>
      this.#options.logger.warn(
        { reason: safeReason(error), instance: this.instance },
        'cannot remove the replica folder',
      ),
    );
  }

  async #run(): Promise<void> {
    const { plan, workDir, onLine, instance } = this.#options;
    const tmp = join(workDir, 'tmp');
    await mkdir(tmp, { recursive: true });
    const env: StringMap = { ...this.#options.baseEnv, ...plan.env, ...this.#options.extraEnv };
    if (plan.needsUpstreamPort) {
      const upstreamPort = await freePort();
      env.PORT = String(upstreamPort);
      env.upstream_url = `http://127.0.0.1:${upstreamPort}`;
    }
    env.TMPDIR = tmp;
    if (this.#stopping) return;
    const output = lineSink((line) => onLine(instance, line));
    const watchdog = new Watchdog(replicaConfig(env), {
      logger: createJsonLogger('fnbus-watchdog', (line) => output.write(line)),
      env,
      stdout: output,
      stderr: output,
      host: '127.0.0.1',
      serveMetrics: false,
      // A folder of the replica's own, as a container has its own: never the hub's.
      cwd: workDir,
    });
    this.#watchdog = watchdog;
    void this.#watchHealth();
    try {
      const { port } = await watchdog.start(this.#stopSignal.signal);
      this.#port = port;
    } catch (error) {
      if (!this.#stopping) throw error;
    }
  }

  /** Follows readiness until stopped: often while not ready, every healthIntervalMs after. */
  async #watchHealth(): Promise<void> {
    while (!this.#stopping) {
      this.#setReady(this.ready);
      try {
        await sleep(this.#ready ? this.#options.healthIntervalMs : 20, undefined, {
          signal: this.#stopSignal.signal,
        });
      } catch {
        break;
      }
    }
  }

  #setReady(ready: boolean): void {
    if (this.#ready === ready) return;
    this.#ready = ready;
    this.#options.onReadyChange(this);
  }
}

/** A stream that hands on whole lines (the watchdog writes line by line; this copes if not). */
function lineSink(onLine: (line: string) => void): Writable {
  let pending = '';
  return new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, done) {
      pending += chunk.toString();
      let newline: number;
      while ((newline = pending.indexOf('\n')) !== -1) {
        onLine(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
      done();
    },
    final(done) {
      if (pending !== '') onLine(pending);
      pending = '';
      done();
    },
  });
}
