import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { makeTempDir, repoRoot } from './watchdog.js';

export const cliMain = join(repoRoot, 'dist', 'cli', 'main.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  done: Promise<CliRun>;
}

let noLogins: string | undefined;

/**
 * Starts the built `fnbus` with `input` on stdin (closed right away when absent). Its faas-cli
 * config folder (OPENFAAS_CONFIG, where logins are kept) is an empty one unless `env` names one:
 * never the logins of whoever runs the tests.
 */
export function startCli(
  args: string[],
  env: NodeJS.ProcessEnv,
  input: string | Buffer = '',
): RunningCli {
  noLogins ??= makeTempDir('fnbus-no-logins-');
  const child = spawn(process.execPath, [cliMain, ...args], {
    env: { PATH: process.env.PATH, OPENFAAS_CONFIG: noLogins, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<CliRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  child.stdin.end(input);
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

/** Runs the built `fnbus` to its end. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv,
  input: string | Buffer = '',
): Promise<CliRun> {
  return startCli(args, env, input).done;
}

/**
 * Sends a started `fnbus` `signal` (SIGTERM unless told) and waits for it to exit; at once when it
 * has already.
 */
export async function stopCli(cli: RunningCli, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (cli.child.exitCode !== null || cli.child.signalCode !== null) return;
  const exited = once(cli.child, 'exit');
  cli.child.kill(signal);
  await exited;
}
