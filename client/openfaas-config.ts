import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type * as Yaml from 'yaml';
import { ConfigError } from '../core/errors.js';

/**
 * The YAML library, loaded the first time a config file is there to read or write: it is a
 * third of what `fnbus version` and `fnbus list` would load otherwise, and most runs have no file.
 */
let yamlModule: typeof Yaml | undefined;
function yaml(): typeof Yaml {
  yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return yamlModule;
}

/*
 * faas-cli's per-user config file (faas-cli config/config_file.go), shared with it: `fnbus login`
 * and `faas-cli login` write the same entries, and each reads the other's.
 *
 *   auths:
 *     - gateway: http://127.0.0.1:8080     # normalised as faas-cli does: see normaliseGateway
 *       auth: basic
 *       token: <base64 of user:password>
 *
 * Its folder is $OPENFAAS_CONFIG, else `.openfaas` in the working folder when $CI is true or 1,
 * else ~/.openfaas; the file is `config.yml` in it, mode 0600, in a folder made 0700 (0744 on CI).
 */

type Env = Readonly<Record<string, string | undefined>>;

export interface SavedCredentials {
  user: string;
  password: string;
}

interface AuthEntry {
  gateway?: string;
  auth?: string;
  token?: string;
  [other: string]: unknown;
}

const runningInCi = (env: Env) => env.CI === 'true' || env.CI === '1';

/** The config file's path, as faas-cli finds it. */
export function openFaasConfigFile(env: Env): string {
  const dir = env.OPENFAAS_CONFIG || (runningInCi(env) ? '.openfaas' : '~/.openfaas');
  // go-homedir's Expand: a leading ~ alone or followed by a slash.
  const expanded = /^~(\/|$)/.test(dir) ? join(env.HOME || homedir(), dir.slice(1)) : dir;
  return resolve(expanded, 'config.yml');
}

/** The path as shown to the user: ~ for the home folder. */
export function displayPath(file: string, env: Env): string {
  const home = env.HOME || homedir();
  return home && file.startsWith(`${home}/`) ? `~${file.slice(home.length)}` : file;
}

/**
 * A gateway URL as faas-cli keys its entries (commands/priority.go getGatewayURL): trailing
 * slashes trimmed, lower-cased, `http://` prefixed when it starts otherwise than `http`.
 */
export function normaliseGateway(url: string): string {
  const trimmed = url.trim().replace(/\/+$/, '').toLowerCase();
  return trimmed.startsWith('http') ? trimmed : `http://${trimmed}`;
}

/** The basic-auth credentials saved for `gateway`; undefined when there are none. */
export function lookupCredentials(gateway: string, env: Env): SavedCredentials | undefined {
  const file = openFaasConfigFile(env);
  const key = normaliseGateway(gateway);
  const entry = readAuths(file, env).find((candidate) => sameGateway(candidate, key));
  if (!entry || entry.auth !== 'basic' || typeof entry.token !== 'string') return undefined;
  // faas-cli's DecodeAuth: standard base64 of `user:password`, split at the first colon.
  const decoded = Buffer.from(entry.token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) {
    throw new ConfigError([
      `${displayPath(file, env)}: the token saved for ${key} is not user:password`,
    ]);
  }
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Saves (or replaces) the credentials of `gateway`, as `faas-cli login` does. Returns the file. */
export function saveCredentials(gateway: string, credentials: SavedCredentials, env: Env): string {
  const file = openFaasConfigFile(env);
  const key = normaliseGateway(gateway);
  const document = readDocument(file, env);
  const auths = authsOf(document, file, env);
  const entry: AuthEntry = {
    gateway: key,
    auth: 'basic',
    token: Buffer.from(`${credentials.user}:${credentials.password}`, 'utf8').toString('base64'),
  };
  const at = auths.findIndex((candidate) => sameGateway(candidate, key));
  if (at >= 0) auths[at] = entry;
  else auths.push(entry);
  write(file, { ...document, auths }, env);
  return file;
}

/** Removes the entry of `gateway`, as `faas-cli logout` does; false when there was none. */
export function removeCredentials(gateway: string, env: Env): boolean {
  const file = openFaasConfigFile(env);
  const key = normaliseGateway(gateway);
  const document = readDocument(file, env);
  const auths = authsOf(document, file, env);
  const kept = auths.filter((candidate) => !sameGateway(candidate, key));
  if (kept.length === auths.length) return false;
  write(file, { ...document, auths: kept }, env);
  return true;
}

/** faas-cli matches the normalised URL exactly; entries written by hand are normalised too. */
function sameGateway(entry: AuthEntry, key: string): boolean {
  return typeof entry.gateway === 'string' && normaliseGateway(entry.gateway) === key;
}

function readAuths(file: string, env: Env): AuthEntry[] {
  return authsOf(readDocument(file, env), file, env);
}

/** The file's top-level map; empty when the file is absent or empty. */
function readDocument(file: string, env: Env): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError([`cannot read ${displayPath(file, env)}: ${(error as Error).message}`]);
  }
  let parsed: unknown;
  try {
    parsed = yaml().parse(text);
  } catch (error) {
    throw new ConfigError([`${displayPath(file, env)} is not YAML: ${(error as Error).message}`]);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError([`${displayPath(file, env)}: expected a map with an auths list`]);
  }
  return parsed as Record<string, unknown>;
}

function authsOf(document: Record<string, unknown>, file: string, env: Env): AuthEntry[] {
  const auths = document.auths;
  if (auths === undefined || auths === null) return [];
  if (!Array.isArray(auths) || auths.some((entry) => typeof entry !== 'object' || entry === null)) {
    throw new ConfigError([`${displayPath(file, env)}: auths must be a list of maps`]);
  }
  return auths as AuthEntry[];
}

/** Written whole then renamed into place (through a symlink to its target): never half a file. */
function write(file: string, document: Record<string, unknown>, env: Env): void {
  mkdirSync(dirname(file), { recursive: true, mode: runningInCi(env) ? 0o744 : 0o700 });
  let target = file;
  try {
    target = realpathSync(file);
  } catch {
    // not there yet
  }
  const temp = `${target}.${process.pid}.tmp`;
  rmSync(temp, { force: true }); // a leftover of a crash: 'wx' below makes the file 0600 anew
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, yaml().stringify(document, { indent: 2 }));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, target);
  } finally {
    rmSync(temp, { force: true });
  }
}
