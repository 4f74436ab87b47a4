import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

/** fnbus-spawner, built next to this module by `npm run build` (see spawn-helper.ts). */
export const spawnHelperPath = fileURLToPath(new URL('./fnbus-spawner', import.meta.url));
let helperBuilt: boolean | undefined;

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. the command does not exist). */
  error?: Error;
}

/** A running function process with its three pipes. */
export interface FunctionProcess {
  readonly pid: number | undefined;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Settles once the process has exited and its output pipes are drained; never rejects. */
  readonly exited: Promise<ProcessExit>;
  /** Signals the process and everything it started (its process group). */
  kill(signal?: NodeJS.Signals): void;
}

/** Process groups still running, ended with the watchdog so none is left orphaned. */
const running = new Set<number>();
process.once('exit', () => {
  for (const pid of running) killGroup(pid, 'SIGKILL');
});

function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts `command` (never through a shell) with `env` as its whole environment, in a process
 * group of its own so that a timeout also ends whatever it started. `boundToUs` (for a
 * long-running process) goes through fnbus-spawner when it is built: the kernel then kills the
 * process if we end, even by SIGKILL, so it never outlives its watchdog (or the hub).
 */
export function spawnFunction(
  command: readonly string[],
  env: NodeJS.ProcessEnv,
  { boundToUs = false, cwd }: { boundToUs?: boolean; cwd?: string } = {},
): FunctionProcess {
  const [file = '', ...args] = command;
  helperBuilt ??= existsSync(spawnHelperPath);
  const child =
    boundToUs && helperBuilt
      ? spawn(spawnHelperPath, ['--exec-bound-to', String(process.pid), file, ...args], {
          env,
          cwd,
          stdio: 'pipe',
          detached: true,
        })
      : spawn(file, args, { env, cwd, stdio: 'pipe', detached: true });
  const pid = child.pid;
  if (pid !== undefined) running.add(pid);
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  child.once('exit', () => pid !== undefined && running.delete(pid));
  // A process that exits without reading its stdin makes our writes fail with EPIPE: that is
  // the function's choice, not an error of the watchdog.
  child.stdin.on('error', () => {});
  return {
    pid,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    kill(signal = 'SIGKILL') {
      if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      if (!killGroup(pid, signal)) child.kill(signal);
    },
  };
}

/** Starts the function process of one call. */
export interface ProcessLauncher {
  /** `extraEnv` is added to the environment every process starts from (the CGI variables). */
  launch(extraEnv: Record<string, string>): FunctionProcess;
  close(): void;
}

/** Forks with node's child_process: works everywhere, at about half the speed of the helper. */
export class ChildProcessLauncher implements ProcessLauncher {
  readonly #command: readonly string[];
  readonly #env: NodeJS.ProcessEnv;
  readonly #cwd: string | undefined;

  constructor(command: readonly string[], env: NodeJS.ProcessEnv, cwd?: string) {
    this.#command = command;
    this.#env = env;
    this.#cwd = cwd;
  }

  launch(extraEnv: Record<string, string>): FunctionProcess {
    return spawnFunction(this.#command, { ...this.#env, ...extraEnv }, { cwd: this.#cwd });
  }

  close(): void {}
}

/** `exit status 2` / `signal: SIGSEGV` / the start error, as the reason a call failed. */
export function describeExit(exit: ProcessExit, command: readonly string[]): string {
  if (exit.error) return `cannot start ${JSON.stringify(command[0])}: ${exit.error.message}`;
  if (exit.signal) return `signal: ${exit.signal}`;
  return `exit status ${exit.code}`;
}
