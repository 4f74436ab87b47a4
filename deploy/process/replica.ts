import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StringMap } from '../../core/function-types.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { freePort } from './free-port.js';
import type { LaunchPlan } from './launch-plan.js';

export interface ReplicaOptions {
  /** The replica's name in logs and `instance` filters, unique within its function. */
  instance: string;
  /** The spec version it runs: an update starts a newer generation beside the old one. */
  generation: number;
  /** The watchdog executable (`bin/fnbus-watchdog`). */
  watchdogPath: string;
  plan: LaunchPlan;
  /** Environment given to every replica before the function's own (PATH and the like). */
  baseEnv: StringMap;
  /** Environment added after the function's own (e.g. FNBUS_SECRETS_PATH). */
  extraEnv: StringMap;
  /** The replica's own folder; its `tmp/` is the watchdog's TMPDIR (lock file). Removed on stop. */
  workDir: string;
  /** Every line the watchdog writes, stdout and stderr. */
  onLine: (instance: string, text: string) => void;
  /** Readiness changed (either way). */
  onReadyChange: (replica: Replica) => void;
  logger?: Logger;
  /** First restart delay; doubles up to maxBackoffMs; resets after a run of stableAfterMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  stableAfterMs?: number;
  /** How often a ready replica's health is checked again (a starting one: every 50ms). */
  healthIntervalMs?: number;
  /** After SIGTERM, how long the watchdog may drain before SIGKILL. */
  stopGraceMs?: number;
}

interface ReadyLine {
  msg?: unknown;
  port?: unknown;
}

/**
 * One supervised watchdog process: started, watched (ready = `/_/health` answers 200), and
 * restarted with exponential backoff whenever it exits, until stop().
 */
export class Replica {
  readonly instance: string;
  readonly generation: number;
  readonly #options: ReplicaOptions & {
    minBackoffMs: number;
    maxBackoffMs: number;
    stableAfterMs: number;
    healthIntervalMs: number;
    stopGraceMs: number;
    logger: Logger;
  };
  #child: ChildProcess | undefined;
  #port = 0;
  #ready = false;
  #stopping = false;
  #restarts = 0;
  #loop: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  readonly #stopSignal = new AbortController();

  constructor(options: ReplicaOptions) {
    this.instance = options.instance;
    this.generation = options.generation;
    this.#options = {
      minBackoffMs: 100,
      maxBackoffMs: 10_000,
      stableAfterMs: 10_000,
      healthIntervalMs: 1000,
      stopGraceMs: 5000,
      logger: silentLogger,
      ...options,
    };
  }

  get ready(): boolean {
    return this.#ready;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** The running watchdog's pid, if one runs. */
  get pid(): number | undefined {
    return this.#child?.exitCode === null ? this.#child.pid : undefined;
  }

  get restarts(): number {
    return this.#restarts;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  start(): void {
    this.#loop ??= this.#supervise();
  }

  /** SIGTERM (the watchdog drains its calls), SIGKILL after the grace; no more restarts. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    this.#stopSignal.abort();
    this.#setReady(false);
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), this.#options.stopGraceMs);
      await exited;
      clearTimeout(timer);
    }
    await this.#loop;
    await rm(this.#options.workDir, { recursive: true, force: true });
  }

  async #supervise(): Promise<void> {
    let backoffMs = this.#options.minBackoffMs;
    while (!this.#stopping) {
      const startedAt = Date.now();
      try {
        await this.#runOnce();
      } catch (error) {
        this.#options.logger.error({ err: error, instance: this.instance }, 'replica failed');
      }
      if (this.#stopping) break;
      if (Date.now() - startedAt >= this.#options.stableAfterMs)
        backoffMs = this.#options.minBackoffMs;
      this.#options.logger.warn(
        { instance: this.instance, backoffMs },
        'replica exited: restarting after backoff',
      );
      try {
        await sleep(backoffMs, undefined, { signal: this.#stopSignal.signal });
      } catch {
        break;
      }
      backoffMs = Math.min(backoffMs * 2, this.#options.maxBackoffMs);
      this.#restarts++;
    }
  }

  /** Starts the watchdog and resolves once it has exited and its output is read. */
  async #runOnce(): Promise<void> {
    const { plan, workDir } = this.#options;
    const tmp = join(workDir, 'tmp');
    await mkdir(tmp, { recursive: true });
    const env: StringMap = { ...this.#options.baseEnv, ...plan.env, ...this.#options.extraEnv };
    if (plan.needsUpstreamPort) {
      const upstreamPort = await freePort();
      env.PORT = String(upstreamPort);
      env.upstream_url = `http://127.0.0.1:${upstreamPort}`;
    }
    // Ours, whatever envVars say: several replicas share the host, each needs its own.
    env.port = '0';
    env.metrics_port = '0';
    env.TMPDIR = tmp;
    if (this.#stopping) return;

    // Its own process group, so whatever it leaves behind (an http-mode runner) can be killed.
    const child = spawn(this.#options.watchdogPath, [], {
      env,
      cwd: workDir,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.#child = child;
    const running = new AbortController();
    const closed = new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      child.once('error', (error) => {
        this.#options.onLine(this.instance, `cannot start the watchdog: ${error.message}`);
        resolve();
      });
    });
    child.once('exit', (code, signal) => {
      running.abort();
      this.#setReady(false);
      killGroup(child, 'SIGKILL');
      if (!this.#stopping) {
        this.#options.onLine(
          this.instance,
          `watchdog exited (${signal ? `signal ${signal}` : `code ${code}`})`,
        );
      }
    });
    readLines(child.stdout, (line) => this.#options.onLine(this.instance, line));
    readLines(child.stderr, (line) => {
      this.#options.onLine(this.instance, line);
      this.#onStderrLine(line, running.signal);
    });
    await closed;
    running.abort();
    this.#port = 0;
  }

  #onStderrLine(line: string, signal: AbortSignal): void {
    if (!line.startsWith('{') || !line.includes('watchdog ready')) return;
    let parsed: ReadyLine;
    try {
      parsed = JSON.parse(line) as ReadyLine;
    } catch {
      return;
    }
    if (parsed.msg !== 'watchdog ready' || typeof parsed.port !== 'number') return;
    this.#port = parsed.port;
    void this.#watchHealth(parsed.port, signal);
  }

  /** Polls `/_/health` while this run lasts: fast until ready, then every healthIntervalMs. */
  async #watchHealth(port: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted && !this.#stopping) {
      const ok = await healthy(port);
      if (signal.aborted || this.#stopping) break;
      this.#setReady(ok);
      try {
        await sleep(ok ? this.#options.healthIntervalMs : 50, undefined, { signal });
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

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

function readLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    pending += text;
    let newline: number;
    while ((newline = pending.indexOf('\n')) !== -1) {
      onLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
  });
  stream.on('end', () => {
    if (pending !== '') onLine(pending);
    pending = '';
  });
}

function healthy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/_/health', agent: false, timeout: 1000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
    req.end();
  });
}
