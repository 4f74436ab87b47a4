import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import {
  BadGatewayError,
  FnbusError,
  ConflictError,
  LimitError,
  NotFoundError,
  NotImplementedError,
  UnavailableError,
  ValidationError,
} from '../../core/errors.js';
import { joinFunctionName } from '../../core/function-name.js';
import type {
  FunctionDeployment,
  FunctionNamespace,
  FunctionStatus,
  Secret,
} from '../../core/function-types.js';
import type { ProviderInfo } from '../../core/info-types.js';
import type { LogMessage, LogRequest } from '../../core/log-types.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import type { NamespaceStore, Provider, SecretStore } from '../../core/provider.js';

export interface FaasProviderOptions {
  /**
   * The provider's base URL (`http://faas-netes.openfaas:8081`, a faasd provider, or any
   * OpenFaaS-compatible gateway). Credentials in it are taken out and used as basic auth.
   */
  url: string;
  /** Basic auth on `/system/*`, as OpenFaaS's gateway sends to its provider. */
  credentials?: { user: string; password: string } | undefined;
  /**
   * How long one `/system/*` call may take, its whole answer included; default 10 s. A log
   * follower's stream is bounded by its caller's signal instead, once its head has come.
   */
  timeoutMs?: number;
  /** How long a ready function is trusted before resolve() asks again; default 1 s. */
  readyCacheMs?: number;
  logger?: Logger;
}

/** A body the provider sends back, as text, cut short: it goes into an error message. */
const maxErrorText = 300;

/**
 * A Provider that speaks OpenFaaS's faas-provider REST API over HTTP: what faas-netes, faasd and
 * every OpenFaaS provider serve (and fnbus's own gateway, so one hub can front another). Every
 * call has a timeout and follows the caller's signal; the remote's statuses become fnbus's error
 * classes, so the gateway answers as the remote did (a 501 there is a 501 here).
 */
export class FaasProvider implements Provider {
  readonly secrets: SecretStore;
  readonly namespaceStore: NamespaceStore;
  readonly #base: URL;
  readonly #basePath: string;
  readonly #authorization: string | undefined;
  readonly #timeoutMs: number;
  readonly #readyCacheMs: number;
  readonly #pool: Pool;
  readonly #logger: Logger;
  /** Functions seen ready, and until when that is trusted (resolve runs on every call). */
  readonly #ready = new Map<string, number>();

  constructor(options: FaasProviderOptions) {
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ValidationError(`provider URL must be http:// or https://, not ${url.protocol}`);
    }
    const fromUrl = url.username
      ? { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) }
      : undefined;
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    this.#base = url;
    this.#basePath = url.pathname.replace(/\/+$/, '');
    const credentials = options.credentials ?? fromUrl;
    this.#authorization =
      credentials &&
      `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString('base64')}`;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#readyCacheMs = options.readyCacheMs ?? 1000;
    this.#logger = options.logger ?? silentLogger;
    this.#pool = new Pool(url.origin, {
      connections: 32,
      connectTimeout: Math.min(this.#timeoutMs, 10_000),
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
    });
    this.secrets = {
      list: (namespace, signal) =>
        this.#json<Secret[]>('GET', '/system/secrets', { query: { namespace }, signal }),
      create: (secret, signal) => this.#send('POST', '/system/secrets', { body: secret, signal }),
      update: (secret, signal) => this.#send('PUT', '/system/secrets', { body: secret, signal }),
      remove: (name, namespace, signal) =>
        this.#send('DELETE', '/system/secrets', { body: { name, namespace }, signal }),
    };
    this.namespaceStore = {
      get: async (name, signal) => {
        try {
          return await this.#json<FunctionNamespace>('GET', `/system/namespace/${enc(name)}`, {
            signal,
          });
        } catch (error) {
          if (error instanceof NotFoundError) return undefined;
          throw error;
        }
      },
      // faas-cli's SDK posts to `/system/namespace/` with the name in the body.
      create: (namespace, signal) =>
        this.#send('POST', '/system/namespace/', { body: namespace, signal }),
      update: (namespace, signal) =>
        this.#send('PUT', `/system/namespace/${enc(namespace.name)}`, { body: namespace, signal }),
      remove: (name, signal) =>
        this.#send('DELETE', `/system/namespace/${enc(name)}`, { body: { name }, signal }),
    };
  }

  /** The provider's URL without credentials: what may be logged. */
  get url(): string {
    return this.#base.href;
  }

  async info(signal?: AbortSignal): Promise<ProviderInfo> {
    // A faas-provider answers its own ProviderInfo; an OpenFaaS gateway wraps it in `provider`.
    const info = await this.#json<ProviderInfo | { provider: ProviderInfo }>(
      'GET',
      '/system/info',
      {
        signal,
      },
    );
    const inner = typeof info.provider === 'object' ? info.provider : (info as ProviderInfo);
    return {
      provider: String(inner.provider ?? 'unknown'),
      orchestration: String(inner.orchestration ?? 'unknown'),
      version: {
        release: String(inner.version?.release ?? ''),
        sha: String(inner.version?.sha ?? ''),
        ...(inner.version?.commit_message ? { commit_message: inner.version.commit_message } : {}),
      },
    };
  }

  namespaces(signal?: AbortSignal): Promise<string[]> {
    return this.#json<string[]>('GET', '/system/namespaces', { signal });
  }

  deploy(spec: FunctionDeployment, signal?: AbortSignal): Promise<void> {
    return this.#send('POST', '/system/functions', { body: spec, signal });
  }

  async update(spec: FunctionDeployment, signal?: AbortSignal): Promise<void> {
    this.#ready.delete(joinFunctionName(spec.service, spec.namespace));
    await this.#send('PUT', '/system/functions', { body: spec, signal });
  }

  async remove(name: string, namespace?: string, signal?: AbortSignal): Promise<void> {
    this.#ready.delete(joinFunctionName(name, namespace));
    await this.#send('DELETE', '/system/functions', {
      query: { namespace },
      body: { functionName: name, ...(namespace ? { namespace } : {}) },
      signal,
    });
  }

  async list(namespace?: string, signal?: AbortSignal): Promise<FunctionStatus[]> {
    const listed = await this.#json<FunctionStatus[]>('GET', '/system/functions', {
      query: { namespace },
      signal,
    });
    if (!Array.isArray(listed)) throw new BadGatewayError('the provider listed no array');
    return listed.map(withoutCount);
  }

  async get(
    name: string,
    namespace?: string,
    signal?: AbortSignal,
  ): Promise<FunctionStatus | undefined> {
    try {
      return withoutCount(
        await this.#json<FunctionStatus>('GET', `/system/function/${enc(name)}`, {
          query: { namespace, usage: 'false' },
          signal,
        }),
      );
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  async scale(
    name: string,
    replicas: number,
    namespace?: string,
    signal?: AbortSignal,
  ): Promise<void> {
    this.#ready.delete(joinFunctionName(name, namespace));
    await this.#send('POST', `/system/scale-function/${enc(name)}`, {
      query: { namespace },
      body: { serviceName: name, replicas, ...(namespace ? { namespace } : {}) },
      signal,
    });
  }

  /**
   * The provider's own invoke route for the function (`/function/<name>.<namespace>/`), which
   * reaches a ready replica. A function not seen ready in the last readyCacheMs is looked up
   * first, so that the gateway can scale it from zero (UnavailableError) or answer 404.
   */
  async resolve(name: string, namespace?: string, signal?: AbortSignal): Promise<URL> {
    const key = joinFunctionName(name, namespace);
    const until = this.#ready.get(key);
    if (until === undefined || until < Date.now()) {
      const status = await this.get(name, namespace, signal);
      if (!status) throw new NotFoundError(`function "${key}" not found`);
      if (!((status.availableReplicas ?? 0) > 0)) {
        this.#ready.delete(key);
        throw new UnavailableError(`function "${key}" has no ready replica`);
      }
      this.#ready.set(key, Date.now() + this.#readyCacheMs);
    }
    return new URL(`${this.#basePath}/function/${enc(key)}/`, this.#base.origin);
  }

  /** The provider's `/system/logs`, NDJSON, read line by line until the end or `signal`. */
  async *logs(req: LogRequest, signal: AbortSignal): AsyncIterable<LogMessage> {
    const query: Record<string, string | undefined> = {
      name: req.name,
      namespace: req.namespace,
      instance: req.instance,
      tail: req.tail === undefined ? undefined : String(req.tail),
      follow: String(req.follow),
      since: req.since?.toISOString(),
    };
    // A stream lasts as long as its reader wants, so the signal is the caller's alone: undici's
    // connect and headers timeouts (timeoutMs) bound the wait for its head, its body timeout
    // the pauses between lines unless following.
    let answer: Dispatcher.ResponseData;
    try {
      answer = await this.#request('GET', '/system/logs', {
        query,
        signal,
        caller: signal,
        ...(req.follow ? { bodyTimeoutMs: 0 } : {}),
      });
    } catch (error) {
      // The caller left before the answer began: the stream ends, as it would have.
      if (signal.aborted) return;
      throw error;
    }
    await this.#check(answer, 'GET', '/system/logs');
    let rest = '';
    try {
      for await (const chunk of answer.body as AsyncIterable<Buffer>) {
        rest += chunk.toString('utf8');
        let end: number;
        while ((end = rest.indexOf('\n')) >= 0) {
          const line = rest.slice(0, end).trim();
          rest = rest.slice(end + 1);
          if (line) yield parseLogLine(line);
        }
      }
      if (rest.trim()) yield parseLogLine(rest.trim());
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof FnbusError) throw error;
      throw this.#failed(error, 'GET', '/system/logs');
    } finally {
      answer.body.destroy();
    }
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }

  async #json<T>(method: Dispatcher.HttpMethod, path: string, call: Call = {}): Promise<T> {
    const text = await this.#text(method, path, call);
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new BadGatewayError(`the provider's answer to ${method} ${path} is not JSON`, {
        cause: error,
      });
    }
  }

  async #send(method: Dispatcher.HttpMethod, path: string, call: Call): Promise<void> {
    await this.#text(method, path, call);
  }

  /**
   * One call and its whole answer, within the call's deadline (timeoutMs) and the caller's
   * signal, joined as fnbus's other system calls join theirs (queue/callback.ts, the connectors'
   * callSignal): a provider that takes the connection and never answers, or stops halfway, fails
   * the call in time.
   */
  async #text(method: Dispatcher.HttpMethod, path: string, call: Call): Promise<string> {
    const deadline = AbortSignal.timeout(this.#timeoutMs);
    const signal = call.signal ? AbortSignal.any([deadline, call.signal]) : deadline;
    const answer = await this.#request(method, path, { ...call, signal, caller: call.signal });
    try {
      await this.#check(answer, method, path);
      return await answer.body.text();
    } catch (error) {
      if (error instanceof FnbusError) throw error;
      throw this.#failed(error, method, path, call.signal);
    } finally {
      answer.body.destroy();
    }
  }

  async #request(
    method: Dispatcher.HttpMethod,
    path: string,
    {
      query = {},
      body,
      signal,
      caller,
      bodyTimeoutMs,
    }: Call & {
      /** The caller's own signal (in `signal`): tells a cancelled call from one out of time. */
      caller?: AbortSignal | undefined;
      bodyTimeoutMs?: number;
    },
  ): Promise<Dispatcher.ResponseData> {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== '') search.set(key, value);
    }
    const full = `${this.#basePath}${path}${search.size > 0 ? `?${search.toString()}` : ''}`;
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.#authorization) headers.Authorization = this.#authorization;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      return await this.#pool.request({
        method,
        path: full,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal,
        ...(bodyTimeoutMs === undefined ? {} : { bodyTimeout: bodyTimeoutMs }),
      });
    } catch (error) {
      throw this.#failed(error, method, path, caller);
    }
  }

  /**
   * A call that got no usable answer, as an UnavailableError that says what failed: cancelled by
   * its caller, past its deadline, or the connection's failure. Never the URL's credentials: the
   * provider is named by its origin alone.
   */
  #failed(error: unknown, method: string, path: string, caller?: AbortSignal): FnbusError {
    const where = `(${method} ${path})`;
    if (caller?.aborted) {
      return new UnavailableError(
        `the call to provider ${this.#base.origin} ${where} was cancelled`,
        {
          cause: error,
        },
      );
    }
    const code = (error as { code?: unknown } | undefined)?.code;
    const reason =
      isTimeout(error) ||
      error instanceof undiciErrors.HeadersTimeoutError ||
      error instanceof undiciErrors.BodyTimeoutError ||
      error instanceof undiciErrors.ConnectTimeoutError ||
      (error instanceof Error && isTimeout(error.cause))
        ? `no answer within ${this.#timeoutMs} ms`
        : typeof code === 'string'
          ? code
          : 'the connection failed';
    this.#logger.warn(
      { provider: this.#base.origin, method, path, reason },
      'provider call failed',
    );
    return new UnavailableError(`provider ${this.#base.origin} unreachable ${where}: ${reason}`, {
      cause: error,
    });
  }

  /** Throws the fnbus error of a status other than 2xx, with the provider's own message. */
  async #check(answer: Dispatcher.ResponseData, method: string, path: string): Promise<void> {
    const status = answer.statusCode;
    if (status >= 200 && status < 300) return;
    const text = (await answer.body.text().catch(() => '')).trim().slice(0, maxErrorText);
    const said = text || `status ${status}`;
    switch (status) {
      case 400:
      case 422:
        throw new ValidationError(said);
      case 404:
        throw new NotFoundError(said);
      case 409:
        throw new ConflictError(said);
      case 429:
        throw new LimitError(said);
      case 501:
        throw new NotImplementedError(said);
      case 503:
        throw new UnavailableError(said);
      case 401:
      case 403:
        // The caller's credentials are fnbus's business, not the provider's: never a 401 here.
        throw new BadGatewayError(
          `the provider refused fnbus's credentials (${status} on ${method} ${path}): set the provider's basic auth`,
        );
      default:
        throw new BadGatewayError(`the provider answered ${status} to ${method} ${path}: ${said}`);
    }
  }
}

/** What one `/system/*` call sends, and the caller's signal. */
interface Call {
  query?: Record<string, string | undefined>;
  body?: unknown;
  signal?: AbortSignal | undefined;
}

/** An abort by AbortSignal.timeout: its reason is a DOMException named TimeoutError. */
function isTimeout(reason: unknown): boolean {
  return reason instanceof DOMException && reason.name === 'TimeoutError';
}

/** Calls are counted by the gateway in front, not the provider (one fronting a gateway counts too). */
function withoutCount(status: FunctionStatus): FunctionStatus {
  const { invocationCount: _count, ...rest } = status;
  return rest;
}

function enc(name: string): string {
  return encodeURIComponent(name);
}

function parseLogLine(line: string): LogMessage {
  try {
    const parsed = JSON.parse(line) as Partial<LogMessage>;
    return {
      name: String(parsed.name ?? ''),
      namespace: String(parsed.namespace ?? ''),
      instance: String(parsed.instance ?? ''),
      timestamp: String(parsed.timestamp ?? ''),
      text: String(parsed.text ?? ''),
    };
  } catch (error) {
    throw new BadGatewayError('a line of the provider’s logs is not JSON', { cause: error });
  }
}
