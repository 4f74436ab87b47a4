import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The lock file OpenFaaS's probes look for (`/tmp/.lock`, or `$TMPDIR/.lock`): present while the
 * watchdog is ready to serve. Its absence makes /_/health fail, as in OpenFaaS.
 */
export function lockFilePath(): string {
  return join(tmpdir(), '.lock');
}

export const lockFile = {
  create: () => writeFile(lockFilePath(), ''),
  remove: () => rm(lockFilePath(), { force: true }),
  exists: () => existsSync(lockFilePath()),
};
