import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyContextConfig, FastifyInstance, FastifyRequest } from 'fastify';
import { ConfigError } from '../core/errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Behind basic auth though outside `/system/` (the cancel alias on `/async-function`). */
    systemAuth?: boolean;
  }
}

export interface BasicAuthCredentials {
  user: string;
  password: string;
}

export const basicAuthUserFile = 'basic-auth-user';
export const basicAuthPasswordFile = 'basic-auth-password';

/**
 * The credentials for `/system/*`, as OpenFaaS reads them: the files `basic-auth-user` and
 * `basic-auth-password` under `secret_mount_path` (trimmed); when they are not there, the ones the
 * caller passes (from env, say). ConfigError, naming what is missing, when there are neither.
 */
export function loadCredentials(
  secretMountPath: string,
  fallback: BasicAuthCredentials | undefined,
): BasicAuthCredentials {
  const read = (file: string): string | undefined => {
    try {
      return readFileSync(join(secretMountPath, file), 'utf8').trim();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new ConfigError([
        `basic_auth: cannot read ${join(secretMountPath, file)}: ${(error as Error).message}`,
      ]);
    }
  };
  const user = read(basicAuthUserFile);
  const password = read(basicAuthPasswordFile);
  const fromFiles = user !== undefined || password !== undefined;
  const credentials = fromFiles ? { user: user ?? '', password: password ?? '' } : fallback;
  const problems: string[] = [];
  if (!credentials) {
    problems.push(
      `basic_auth is on but there are no credentials: put ${basicAuthUserFile} and ` +
        `${basicAuthPasswordFile} in secret_mount_path (${secretMountPath}), or pass them`,
    );
  } else {
    const where = fromFiles ? ` (in ${secretMountPath})` : '';
    if (credentials.user === '') problems.push(`basic_auth: the user is missing or empty${where}`);
    if (credentials.password === '')
      problems.push(`basic_auth: the password is missing or empty${where}`);
  }
  if (problems.length > 0 || !credentials) throw new ConfigError(problems);
  return credentials;
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * Whether a route (its URL pattern, or a request's URL where no route matched) needs credentials:
 * all of `/system`, and the routes marked `systemAuth`. The auth hook and the OpenAPI document's
 * security both ask this.
 */
export function needsCredentials(url: string, config?: FastifyContextConfig): boolean {
  if (config?.systemAuth === true) return true;
  return url.startsWith('/system/') || url === '/system' || url.startsWith('/system?');
}

const needsAuth = (request: FastifyRequest) =>
  needsCredentials(request.routeOptions.url ?? request.url, request.routeOptions.config);

/**
 * Basic auth on every `/system/*` route and the routes marked `config: { systemAuth: true }`
 * (OpenFaaS's scope: function routes, async submission, `/healthz` and `/metrics` stay open).
 * Both fields are compared in constant time, on equal-length digests so neither their content
 * nor their length leaks. Failure: 401, `WWW-Authenticate`, `invalid
 * credentials`.
 */
export function registerBasicAuth(app: FastifyInstance, credentials: BasicAuthCredentials): void {
  const user = digest(credentials.user);
  const password = digest(credentials.password);
  app.addHook('onRequest', async (request, reply) => {
    if (!needsAuth(request)) return;
    const given = parseBasic(request.headers.authorization);
    // Both comparisons always run: no early exit tells a right user from a wrong one.
    const userOk = timingSafeEqual(digest(given?.user ?? ''), user);
    const passwordOk = timingSafeEqual(digest(given?.password ?? ''), password);
    if (given && userOk && passwordOk) return;
    return reply
      .code(401)
      .header('WWW-Authenticate', 'Basic realm="Restricted"')
      .type('text/plain')
      .send('invalid credentials\n');
  });
}

function parseBasic(header: string | undefined): BasicAuthCredentials | undefined {
  const match = /^basic\s+(\S+)\s*$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
