import { connect } from 'node:net';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../core/logger.js';
import { Backoff } from '../core/retry-policy.js';
import { logOutput, type OutputLogOptions } from './output-log.js';
import { describeExit, spawnFunction, type FunctionProcess } from './spawner.js';
import { basename, isAbsolute } from 'node:path';

export interface SupervisorOptions {
  command: readonly string[];
  env: NodeJS.ProcessEnv;
  upstream: URL;
  stdout: Writable;
  stderr: Writable;
  logOptions: OutputLogOptions;
  logger: Logger;
  /** First restart delay; doubles (jittered) up to maxBackoffMs, and resets after a run of stableAfterMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  stableAfterMs?: number;
  /** How long a stopping process gets after SIGTERM before SIGKILL. */
  stopGraceMs?: number;
  /** The process's working directory (default: this process's). */
  cwd?: string;
}

/**
 * Keeps the long-running function process of `http` mode alive. OpenFaaS's of-watchdog exits
 * when it dies; fnbus restarts it with exponential backoff instead and reports not-ready while
 * it is down, so a crash costs the calls in flight, not the replica, and a crash loop is still
 * visible to the orchestrator through the health check.
 *
 * Ready means the upstream accepts TCP connections, not merely that the process was started.
 */
export class FunctionSupervisor {
  readonly #options: Required<Omit<SupervisorOptions, 'cwd'>> & Pick<SupervisorOptions, 'cwd'>;
  #child: FunctionProcess | undefined;
  #ready = false;
  #stopping = false;
  #restarts = 0;
  #running: Promise<void> | undefined;
  readonly #stopSignal = new AbortController();

  constructor(options: SupervisorOptions) {
    this.#options = {
      minBackoffMs: 100,
      maxBackoffMs: 10_000,
      stableAfterMs: 10_000,
      stopGraceMs: 10_000,
      ...options,
    };
  }

  get ready(): boolean {
    return this.#ready;
  }

  get restarts(): number {
    return this.#restarts;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the process and keeps restarting it until stop(). */
  start(): void {
    this.#running ??= this.#superviseLoop();
  }

  /** Resolves when the upstream is ready, or rejects on abort. */
  async waitUntilReady(signal?: AbortSignal): Promise<void> {
    while (!this.#ready) {
      signal?.throwIfAborted();
      await sleep(10, undefined, { signal });
    }
  }

  /** Forwards SIGTERM, waits for the process to exit (SIGKILL after the grace), stops restarting. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#ready = false;
    this.#stopSignal.abort();
    const child = this.#child;
    if (child) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), this.#options.stopGraceMs);
      await child.exited;
      clearTimeout(killer);
    }
    await this.#running;
  }

  async #superviseLoop(): Promise<void> {
    const { logger, minBackoffMs, maxBackoffMs, stableAfterMs } = this.#options;
    const backoff = new Backoff({ minWaitMs: minBackoffMs, maxWaitMs: maxBackoffMs });
    while (!this.#stopping) {
      const startedAt = Date.now();
      const child = this.#spawn();
      this.#child = child;
      void this.#probeUntilReady(child);
      const exit = await child.exited;
      this.#ready = false;
      if (this.#stopping) break;
      if (Date.now() - startedAt >= stableAfterMs) backoff.reset();
      const backoffMs = backoff.next();
      this.#restarts += 1;
      logger.error(
        {
          reason: describeExit(exit, this.#options.command),
          restartInMs: backoffMs,
          restarts: this.#restarts,
        },
        'function process exited; restarting',
      );
      try {
        await sleep(backoffMs, undefined, { signal: this.#stopSignal.signal });
      } catch {
        break;
      }
    }
  }

  #spawn(): FunctionProcess {
    const { command, env, stdout, stderr, logOptions, logger, cwd } = this.#options;
    const child = spawnFunction(command, env, { boundToUs: true, cwd });
    child.stdin.end();
    logOutput(child.stdout, 'stdout', stdout, logOptions);
    logOutput(child.stderr, 'stderr', stderr, logOptions);
    logger.info({ pid: child.pid, command: shownCommand(command) }, 'started function process');
    return child;
  }

  /** Polls the upstream port until it accepts a connection, while this child is still alive. */
  async #probeUntilReady(child: FunctionProcess): Promise<void> {
    let alive = true;
    void child.exited.then(() => (alive = false));
    const port = Number(this.#options.upstream.port || 80);
    const host = this.#options.upstream.hostname.replace(/^\[|\]$/g, '');
    const delays = new Backoff({ minWaitMs: 5, maxWaitMs: 100 });
    while (alive && !this.#stopping) {
      if (await canConnect(host, port)) {
        if (alive && this.#child === child && !this.#stopping) this.#ready = true;
        return;
      }
      await sleep(delays.next());
    }
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The command for a log line: an absolute path shows only its last part (no machine paths). */
function shownCommand(command: readonly string[]): string {
  return command.map((part) => (isAbsolute(part) ? basename(part) : part)).join(' ');
}
