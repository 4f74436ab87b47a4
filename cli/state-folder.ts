import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';

/**
 * Makes the hub's state folder (and its parents) one level at a time, or says in one line why it
 * cannot. Not `mkdirSync(…, { recursive: true })`: on Node 20 that never returns under a folder
 * such as /proc, where a directory can be neither made nor found.
 */
export function makeStateFolder(dir: string): void {
  makeStateFolderIfMissing(resolve(dir), dir);
}

function makeStateFolderIfMissing(path: string, asGiven: string): void {
  try {
    if (statSync(path).isDirectory()) return;
    throw new ConfigError([`--state-dir ${asGiven}: a file is in the way, not a folder`]);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw cannotMake(asGiven, error);
  }
  const parent = dirname(path);
  if (parent !== path) makeStateFolderIfMissing(parent, asGiven);
  try {
    mkdirSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw cannotMake(asGiven, error);
  }
}

function cannotMake(asGiven: string, error: unknown): ConfigError {
  const code = (error as NodeJS.ErrnoException).code ?? 'an error';
  return new ConfigError([`--state-dir ${asGiven}: the folder cannot be made here (${code})`]);
}
