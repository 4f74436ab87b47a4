import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Env } from '../core/config.js';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { defaultGateway } from '../client/gateway-client.js';
import { localHost } from './listen-host.js';
import {
  basicAuthPasswordFile,
  basicAuthUserFile,
  loadCredentials,
  type BasicAuthCredentials,
} from '../gateway/auth.js';

/**
 * Says once, at the start that made the password (before anything else can fail), where it is
 * and how to log in with it; never the password itself.
 */
export function announceGeneratedPassword(
  logger: Logger,
  host: string,
  port: number,
  passwordFile: string,
): void {
  const url = `http://${localHost(host)}:${port}`;
  const gatewayFlag = url === defaultGateway || port === 0 ? '' : ` --gateway ${url}`;
  logger.info(
    { user: generatedUser, passwordFile },
    `basic auth is on for /system: a password was generated for user ${generatedUser}; log in with: ` +
      `cat ${passwordFile} | fnbus login --username ${generatedUser} --password-stdin${gatewayFlag}`,
  );
}

/** The user of a generated password: OpenFaaS's. */
export const generatedUser = 'admin';

export interface HubCredentials {
  /** What `/system/*` takes; undefined when basic auth is off. */
  credentials: BasicAuthCredentials | undefined;
  /** Where the password is kept, when the hub made it (now or on an earlier start). */
  passwordFile?: string;
  /** The password was made by this start: say once how to read it. */
  generated?: boolean;
}

/** `<stateDir>/auth/basic-auth-password`: where `fnbus up` keeps the password it made. */
export function generatedPasswordFile(stateDir: string): string {
  // Absolute: the log-in hint must work from any folder.
  return resolve(stateDir, 'auth', basicAuthPasswordFile);
}

/**
 * The credentials of `fnbus up`'s `/system/*`, first found of: `basic-auth-user` and
 * `basic-auth-password` under `secret_mount_path` (OpenFaaS's way), `FNBUS_USERNAME` /
 * `FNBUS_PASSWORD` (the user defaults to `admin`), else user `admin` with a password made on the
 * first start and kept in the state folder (file 0600, folder 0700), the same on every later start.
 */
export function hubCredentials(
  config: { basicAuth: boolean; secretMountPath: string },
  env: Env,
  stateDir: string,
): HubCredentials {
  if (!config.basicAuth) return { credentials: undefined };
  const inFiles = [basicAuthUserFile, basicAuthPasswordFile].some((file) =>
    existsSync(join(config.secretMountPath, file)),
  );
  if (inFiles) return { credentials: loadCredentials(config.secretMountPath, undefined) };
  const { FNBUS_USERNAME: user, FNBUS_PASSWORD: password } = env;
  if (password) return { credentials: { user: user || generatedUser, password } };
  if (user) {
    // A user with a password made for `admin` would be a login that can never work.
    throw new ConfigError([
      'FNBUS_USERNAME is set without FNBUS_PASSWORD: set both, or neither for a generated password',
    ]);
  }
  const kept = keptPassword(stateDir);
  return {
    credentials: { user: generatedUser, password: kept.password },
    passwordFile: kept.file,
    generated: kept.generated,
  };
}

/** The password kept in the state folder; made (and kept) when there is none yet. */
function keptPassword(stateDir: string): { password: string; file: string; generated: boolean } {
  const file = generatedPasswordFile(stateDir);
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir leaves the mode of a folder that exists, and umask may have widened none: set it.
  chmodSync(dir, 0o700);
  const existing = readIfPresent(file);
  if (existing) {
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return { password: existing, file, generated: false };
  }
  // 24 random bytes: 192 bits, 32 characters that need no quoting in a shell or a URL.
  const password = randomBytes(24).toString('base64url');
  // Written whole to a file of its own first: a crash never leaves a half-written password.
  const temp = `${file}.${process.pid}.tmp`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, `${password}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    if (existing === '') {
      renameSync(temp, file); // an empty file (a crash of an older fnbus?): replace it
    } else {
      // link fails if another start made one meanwhile: then both use that one.
      linkSync(temp, file);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const theirs = readIfPresent(file);
    if (theirs) return { password: theirs, file, generated: false };
    throw error;
  } finally {
    rmSync(temp, { force: true });
  }
  return { password, file, generated: true };
}

/** The trimmed content of `file`; undefined when there is no such file. */
function readIfPresent(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
