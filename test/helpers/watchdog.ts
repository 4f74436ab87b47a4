import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { quote } from 'shell-quote';
import { freePort, tryConnect } from './http.js';
import { waitFor } from './wait.js';

/** The repository root: this file is dist/test/helpers/watchdog.js once built. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const watchdogMain = join(repoRoot, 'dist', 'watchdog', 'main.js');

/** A fixture under test/fixtures (they are not compiled: the source folder is used). */
export function fixture(name: string): string {
  return join(repoRoot, 'test', 'fixtures', name);
}

/** An fprocess value that runs exactly these words, quoted where needed. */
export function fprocess(...words: string[]): string {
  return quote(words);
}

const tempDirs = new Set<string>();
const children = new Set<ChildProcess>();

/** A fresh temporary folder, removed when the test process exits. */
export function makeTempDir(prefix = 'fnbus-watchdog-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

// Whatever a failing test leaves behind, no watchdog outlives the test file.
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LogLine {
  msg?: string;
  level?: number;
  [field: string]: unknown;
}

export interface StartOptions {
  /** The watchdog's TMPDIR (where its lock file goes); a fresh folder by default. */
  tmpdir?: string;
  /** How long the watchdog may take to log "watchdog ready"; default 10s. */
  readyTimeoutMs?: number;
  /**
   * false: do not wait for "watchdog ready" (e.g. an http-mode function that never listens);
   * resolve once `env.port` (which must then be a fixed port) accepts connections.
   */
  waitUntilReady?: boolean;
}

/** A watchdog running as a real child process, its output collected. */
export class RunningWatchdog {
  readonly child: ChildProcess;
  readonly tmpdir: string;
  readonly exited: Promise<Exit>;
  port = 0;
  metricsPort = 0;
  #stdout = '';
  #stderr = '';
  #exit: Exit | undefined;

  constructor(child: ChildProcess, dir: string) {
    this.child = child;
    this.tmpdir = dir;
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (text: string) => (this.#stdout += text));
    child.stderr?.on('data', (text: string) => (this.#stderr += text));
    this.exited = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this.#exit = { code, signal };
        children.delete(child);
        resolve(this.#exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get metricsUrl(): string {
    return `http://127.0.0.1:${this.metricsPort}/metrics`;
  }

  /** `$TMPDIR/.lock`, the file OpenFaaS's probes look for. */
  get lockPath(): string {
    return join(this.tmpdir, '.lock');
  }

  /** Everything the watchdog wrote to stdout so far (in http mode: the function's stdout). */
  get stdout(): string {
    return this.#stdout;
  }

  /** Everything the watchdog wrote to stderr so far: its JSON log and function stderr. */
  get stderr(): string {
    return this.#stderr;
  }

  get hasExited(): boolean {
    return this.#exit !== undefined;
  }

  /** The JSON lines of the watchdog's own log (non-JSON lines are function output). */
  logLines(): LogLine[] {
    const lines: LogLine[] = [];
    for (const line of this.#stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // A function's line that happens to start with "{".
      }
    }
    return lines;
  }

  /** Waits until the watchdog's stderr matches `pattern`, and returns the match. */
  waitForStderr(pattern: RegExp, timeoutMs = 5000): Promise<RegExpExecArray> {
    return waitFor(() => pattern.exec(this.#stderr) ?? undefined, {
      timeoutMs,
      what: `stderr to match ${pattern}; stderr so far:\n${this.#stderr}`,
    });
  }

  /** Waits until the watchdog's stdout matches `pattern`, and returns the match. */
  waitForStdout(pattern: RegExp, timeoutMs = 5000): Promise<RegExpExecArray> {
    return waitFor(() => pattern.exec(this.#stdout) ?? undefined, {
      timeoutMs,
      what: `stdout to match ${pattern}; stdout so far:\n${this.#stdout}`,
    });
  }

  /** Sends a signal to the watchdog itself. */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /**
   * Stops the watchdog as an orchestrator would: SIGTERM (which also stops its function
   * process in http mode), then SIGKILL if it has not exited within `graceMs`.
   */
  async stop(graceMs = 5000): Promise<Exit> {
    if (this.#exit) return this.#exit;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

/** The environment a watchdog gets: nothing of the test runner's beyond PATH and HOME. */
function baseEnv(dir: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? dir,
    TMPDIR: dir,
    port: '0',
    metrics_port: '0',
  };
}

/**
 * Starts `node dist/watchdog/main.js` with `env` (plus PATH, HOME, a fresh TMPDIR and port 0
 * for both servers) and resolves once it has logged "watchdog ready", with the ports it logged.
 * The caller stops it (`after(() => watchdog.stop())`); an exiting test process kills it anyway.
 */
export async function startWatchdog(
  env: Record<string, string>,
  options: StartOptions = {},
): Promise<RunningWatchdog> {
  const dir = options.tmpdir ?? makeTempDir();
  const child = spawn(process.execPath, [watchdogMain], {
    env: { ...baseEnv(dir), ...env },
    // Core dumps and stray files of function processes land in the temporary folder.
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const watchdog = new RunningWatchdog(child, dir);
  if (options.waitUntilReady === false) {
    const port = Number(env.port);
    assert.ok(port > 0, 'waitUntilReady: false needs a fixed env.port');
    await Promise.race([
      waitFor(async () => (await tryConnect(port)) === 'connected', {
        timeoutMs: options.readyTimeoutMs ?? 10_000,
        what: `the watchdog to listen on port ${port}`,
      }),
      watchdog.exited.then((exit) => {
        throw new Error(
          `the watchdog exited (${JSON.stringify(exit)}); stderr:\n${watchdog.stderr}`,
        );
      }),
    ]).catch(async (error: unknown) => {
      await watchdog.stop(100);
      throw error;
    });
    watchdog.port = port;
    return watchdog;
  }
  const ready = await Promise.race([
    waitFor(() => watchdog.logLines().find((line) => line.msg === 'watchdog ready'), {
      timeoutMs: options.readyTimeoutMs ?? 10_000,
      intervalMs: 5,
      what: 'the watchdog to log "watchdog ready"',
    }),
    watchdog.exited.then((exit) => {
      throw new Error(
        `the watchdog exited (${JSON.stringify(exit)}) before it was ready; stderr:\n${watchdog.stderr}`,
      );
    }),
  ]).catch(async (error: unknown) => {
    await watchdog.stop(100);
    throw error;
  });
  watchdog.port = Number(ready.port);
  watchdog.metricsPort = Number(ready.metricsPort);
  return watchdog;
}

export interface CliResult extends Exit {
  stdout: string;
  stderr: string;
}

/**
 * Runs the watchdog binary to completion (config errors, --version, --run-healthcheck) with
 * only `env` (plus PATH and HOME) and `args`; kills it if it is still running after `timeoutMs`.
 */
export function runWatchdogCli(
  env: Record<string, string>,
  args: string[] = [],
  timeoutMs = 5000,
): Promise<CliResult> {
  const dir = env.TMPDIR ?? makeTempDir();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [watchdogMain, ...args], {
      env: { ...baseEnv(dir), ...env },
      // TMPDIR may be made not to exist on purpose.
      cwd: existsSync(dir) ? dir : tmpdir(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A watchdog in http mode in front of node-http-server.cjs, which listens on a free port. */
export async function startNodeFunction(
  env: Record<string, string> = {},
): Promise<RunningWatchdog> {
  const port = await freePort();
  return startWatchdog({
    mode: 'http',
    fprocess: fprocess('node', fixture('node-http-server.cjs')),
    PORT: String(port),
    upstream_url: `http://127.0.0.1:${port}`,
    ...env,
  });
}
