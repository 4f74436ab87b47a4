import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { FnbusError, ValidationError } from '../core/errors.js';
import { lookupCredentials } from './openfaas-config.js';

/** faas-cli's default gateway. */
export const defaultGateway = 'http://127.0.0.1:8080';

export interface GatewayOptions {
  gateway?: string;
  username?: string;
  password?: string;
  /** https: take any certificate (faas-cli's --tls-no-verify). */
  tlsNoVerify?: boolean;
}

export interface GatewayTarget {
  /** The base URL, without a trailing slash. */
  url: string;
  /** The value of the Authorization header, when credentials were given. */
  authorization: string | undefined;
  /** https: take any certificate. */
  tlsNoVerify?: boolean;
}

/**
 * Where the client commands send their calls: `--gateway`, else `FNBUS_GATEWAY`, else
 * `OPENFAAS_URL`, else `fallback` (a stack file's `provider.gateway`), else faas-cli's default.
 * Credentials come from `--username`/`--password`, else `FNBUS_USERNAME`/`FNBUS_PASSWORD` (the
 * user defaults to `admin`, OpenFaaS's, when only a password is given), else the login saved for
 * this gateway in faas-cli's config file (`fnbus login` or `faas-cli login`).
 */
export function resolveGateway(
  options: GatewayOptions,
  env: Readonly<Record<string, string | undefined>>,
  fallback?: string,
): GatewayTarget {
  const url = gatewayUrl(options, env, fallback);
  const username = options.username ?? env.FNBUS_USERNAME;
  const password = options.password ?? env.FNBUS_PASSWORD;
  const asked = username !== undefined || password !== undefined;
  const saved = asked ? undefined : lookupCredentials(url, env);
  const authorization = asked
    ? basicAuthorization(username || 'admin', password ?? '')
    : saved && basicAuthorization(saved.user, saved.password);
  return { url, authorization, ...(options.tlsNoVerify ? { tlsNoVerify: true } : {}) };
}

/** The gateway's base URL (no trailing slash), chosen as `resolveGateway` says. */
export function gatewayUrl(
  options: { gateway?: string },
  env: Readonly<Record<string, string | undefined>>,
  fallback?: string,
): string {
  const raw =
    options.gateway || env.FNBUS_GATEWAY || env.OPENFAAS_URL || fallback || defaultGateway;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ValidationError(`the gateway "${raw}" is not a URL (e.g. ${defaultGateway})`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ValidationError(`the gateway "${raw}" must be an http:// or https:// URL`);
  }
  return raw.replace(/\/+$/, '');
}

/** The `Authorization` header value of HTTP basic auth. */
export function basicAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}

/** A call the gateway could not take or refused: one line for the user. */
export class GatewayError extends FnbusError {
  constructor(status: number, message: string, options?: ErrorOptions) {
    super('gateway_error', status, message, options);
  }
}

export interface GatewayResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface CallOptions {
  query?: Record<string, string | undefined> | [string, string][];
  headers?: Record<string, string | string[]>;
  body?: Buffer | string;
  /** Ends the call (and a streamed body) when it aborts. */
  signal?: AbortSignal;
}

/** A 2xx answer whose body is read as it arrives (`/system/logs?follow=true`). */
export interface GatewayStream {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

/** A thin client of the gateway's HTTP API (gateway/README.md). */
export class GatewayClient {
  readonly target: GatewayTarget;

  constructor(target: GatewayTarget) {
    this.target = target;
  }

  /** One call; any status comes back. Throws a GatewayError only when the gateway is unreachable. */
  async call(method: string, path: string, options: CallOptions = {}): Promise<GatewayResponse> {
    const res = await this.#send(method, path, options);
    try {
      const body = Buffer.concat(await res.toArray());
      return { status: res.statusCode ?? 0, headers: res.headers, body };
    } catch (error) {
      throw this.#unreachable(error);
    }
  }

  /**
   * A system call whose body is streamed rather than buffered: a non-2xx status is a GatewayError
   * saying what the gateway said, as with `system`.
   */
  async stream(method: string, path: string, options: CallOptions = {}): Promise<GatewayStream> {
    const res = await this.#send(method, path, options);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      let body: Buffer;
      try {
        body = Buffer.concat(await res.toArray());
      } catch (error) {
        throw this.#unreachable(error);
      }
      throw refusal({ status, headers: res.headers, body });
    }
    return { status, headers: res.headers, body: res };
  }

  /**
   * node:http, not undici: system calls are few, and a hub's connectors then load no HTTP client
   * of their own (undici costs a process ~6 MB).
   */
  #send(method: string, path: string, options: CallOptions): Promise<IncomingMessage> {
    const url = new URL(this.target.url + path);
    const pairs = Array.isArray(options.query)
      ? options.query
      : Object.entries(options.query ?? {}).filter(
          (e): e is [string, string] => e[1] !== undefined,
        );
    for (const [key, value] of pairs) url.searchParams.append(key, value);
    const headers: Record<string, string | string[]> = { ...options.headers };
    if (this.target.authorization && path.startsWith('/system/')) {
      headers.authorization = this.target.authorization;
    }
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    if (body) headers['content-length'] = String(body.length);
    const https = url.protocol === 'https:';
    const send = https ? httpsRequest : httpRequest;
    const tls = https && this.target.tlsNoVerify ? { rejectUnauthorized: false } : {};
    return new Promise((resolve, reject) => {
      const req = send(url, { method, headers, signal: options.signal, ...tls }, resolve);
      req.once('error', (error) => reject(this.#unreachable(error)));
      req.end(body);
    });
  }

  /** The one line for a gateway that could not be reached, or went away mid-answer. */
  #unreachable(error: unknown): GatewayError {
    return new GatewayError(
      503,
      `cannot reach the gateway at ${this.target.url}: ${reason(error)}`,
      { cause: error },
    );
  }

  /** A call to the system API: a non-2xx status is a GatewayError saying what the gateway said. */
  async system(
    method: string,
    path: string,
    body?: unknown,
    query?: CallOptions['query'],
    signal?: AbortSignal,
  ) {
    const res = await this.call(method, path, {
      query,
      signal,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    if (res.status >= 200 && res.status < 300) return res;
    throw refusal(res);
  }

  async json<T>(path: string, query?: CallOptions['query'], signal?: AbortSignal): Promise<T> {
    const res = await this.system('GET', path, undefined, query, signal);
    try {
      return JSON.parse(res.body.toString('utf8')) as T;
    } catch (error) {
      throw new GatewayError(502, `the gateway answered ${path} with something other than JSON`, {
        cause: error,
      });
    }
  }
}

/** The one line for a refused system call. */
export function refusal(res: GatewayResponse): GatewayError {
  if (res.status === 401) {
    return new GatewayError(
      401,
      'the gateway refused the credentials (401): log in with fnbus login, or use --username/--password or FNBUS_USERNAME/FNBUS_PASSWORD',
    );
  }
  const message = oneLine(res.body.toString('utf8'));
  return new GatewayError(
    res.status,
    `the gateway answered ${res.status}${message ? `: ${message}` : ''}`,
  );
}

function oneLine(text: string): string {
  const line = text.trim().split(/\r?\n/).join(' ');
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

function reason(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return reason(error.errors[0]);
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    const cause = error.cause instanceof Error ? reason(error.cause) : undefined;
    if (cause) return cause;
    return error.message || code || String(error);
  }
  return String(error);
}
