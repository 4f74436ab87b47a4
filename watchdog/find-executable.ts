import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

/**
 * Why `command` cannot be started, as execvp would find it (a name with a `/` as it is, else
 * the first executable file of that name in `PATH`), or undefined when it can. Fork modes start
 * a process per call: this lets the watchdog say so once, and be unhealthy, before any call.
 */
export function findExecutable(
  command: string,
  path: string | undefined,
  cwd = process.cwd(),
): string | undefined {
  if (command === '') return 'no command given';
  // A relative name (`./handler`, or an empty PATH entry) is looked up where the process will run.
  const candidates = command.includes('/')
    ? [resolve(cwd, command)]
    : (path ?? '/usr/local/bin:/usr/bin:/bin')
        .split(delimiter)
        .map((dir) => resolve(cwd, join(dir === '' ? '.' : dir, command)));
  for (const file of candidates) {
    if (isExecutableFile(file)) return undefined;
  }
  return command.includes('/') ? 'no such executable file' : 'not found in PATH';
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
