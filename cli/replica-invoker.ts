import { randomUUID } from 'node:crypto';
import { ValidationError } from '../core/errors.js';
import { headerValue, notSentOn } from '../core/http-headers.js';
import { requestProblems } from '../core/http-request-check.js';
import type { CallLimits, InvokeRequest, InvokeResult, Invoker } from '../core/invoker.js';
import { OpenFaasHeader, startTimeNow } from '../core/openfaas-names.js';
import { UpstreamClient } from '../watchdog/upstream-client.js';
import type { MessageEndpoint } from './local-channel.js';
import { replicaExchange } from './replica-exchange.js';
import type { FromLeases, ToLeases } from './replica-leases.js';
import { TurnBatch } from './turn-batch.js';

export interface ReplicaInvokerOptions {
  /** To the hub's main thread, where cli/replica-leases.ts answers (or a localChannel on it). */
  port: MessageEndpoint;
  /** Where a call goes when no replica is ready here (the gateway's route: scale from zero...). */
  gateway: Invoker & { close(): Promise<void> };
  /** The gateway's host, for X-Forwarded-Host as the gateway would set it. */
  gatewayHost: string;
}

/** Set by this invoker for every call, whatever the queued request carried. */
const ourHeaders: ReadonlySet<string> = new Set(
  [OpenFaasHeader.CallId, OpenFaasHeader.StartTime].map((name) => name.toLowerCase()),
);

/** Clients kept, one per replica origin. */
const maxClients = 64;

/**
 * The queue worker's invoker inside `fnbus up`: calls a replica of the hub's process provider
 * directly from the worker's thread, one HTTP exchange (the function's own process in http mode),
 * where the gateway's route would take two (worker → gateway → function). The hub's main thread
 * leases each call (cli/replica-leases.ts): the replica's max_inflight and the gateway's metrics
 * apply there, and its answer says where to send the call and for how long. Answers as the
 * gateway would: the function's status and headers, X-Call-Id, X-Start-Time, X-Duration-Seconds;
 * fnbus's own refusals (429, 502, 504...) with X-OpenFaaS-Internal. Calls with no ready replica
 * here go through the gateway.
 */
export class ReplicaInvoker implements Invoker {
  readonly #options: ReplicaInvokerOptions;
  readonly #answers = new Map<number, (answer: FromLeases) => void>();
  readonly #clients = new Map<string, UpstreamClient>();
  readonly #targets = new Map<string, { origin: string; base: string }>();
  /** What this turn has to tell the main thread, sent in one message (cli/replica-leases.ts). */
  readonly #outbox: TurnBatch<ToLeases>;
  #nextId = 1;

  constructor(options: ReplicaInvokerOptions) {
    this.#options = options;
    this.#outbox = new TurnBatch(options.port);
    options.port.on('message', (answers: FromLeases[]) => {
      for (const answer of answers) {
        const resolve = this.#answers.get(answer.id);
        this.#answers.delete(answer.id);
        resolve?.(answer);
      }
    });
  }

  async invoke(fn: string, request: InvokeRequest, limits: CallLimits = {}): Promise<InvokeResult> {
    const startedAt = performance.now();
    const problems = requestProblems({
      method: request.method,
      path: request.path === '/' ? '' : request.path,
      query: request.query,
      headers: request.headers,
    });
    if (problems.length > 0) throw new ValidationError(`cannot be sent: ${problems.join('; ')}`);
    const id = this.#nextId++;
    const callId = headerValue(request.headers, 'x-call-id') ?? randomUUID();
    const path = `${request.path}${request.query ? `?${request.query}` : ''}`;
    const answer = await this.#ask(id, {
      type: 'lease',
      id,
      fn,
      method: request.method,
      path,
      callId,
      timeout: headerValue(request.headers, 'x-timeout'),
      bodyBytes: request.body.length,
    });
    // The caller's time left once leased.
    const callerMs =
      limits.timeoutMs !== undefined && limits.timeoutMs > 0
        ? Math.max(1, limits.timeoutMs - (performance.now() - startedAt))
        : undefined;
    if (answer.type === 'gateway') {
      return this.#options.gateway.invoke(fn, request, { ...limits, timeoutMs: callerMs });
    }
    const startTime = startTimeNow();
    const ours = { 'X-Call-Id': callId, 'X-Start-Time': startTime };
    if (answer.type === 'refused') {
      return refusal(answer.status, answer.message, ours, startedAt);
    }
    let status = 502;
    // The function's timeout answers as the watchdog would; the caller's, if it ends first, rejects.
    const callerFirst =
      callerMs !== undefined && (answer.timeoutMs <= 0 || callerMs < answer.timeoutMs);
    try {
      const result = await this.#send(answer.url, path, request, ours, {
        timeoutMs: callerFirst ? callerMs : answer.timeoutMs,
        signal: limits.signal,
      });
      status = result.status;
      result.durationMs = performance.now() - startedAt;
      result.headers['x-duration-seconds'] ??= (result.durationMs / 1000).toFixed(6);
      return result;
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError';
      // The caller's own limit: no answer, as the caller asked.
      if (limits.signal?.aborted || (timedOut && callerFirst)) throw error;
      // No answer: as the watchdog would have answered the gateway.
      status = timedOut ? answer.timeoutStatus : 502;
      const why = timedOut
        ? `the call passed its ${answer.timeoutMs} ms`
        : `cannot reach the function: ${(error as Error).message}`;
      return refusal(status, why, ours, startedAt);
    } finally {
      this.#outbox.post({ type: 'done', id, status });
    }
  }

  /**
   * Settles the calls still waiting for an answer, closes its port to the leases (after saying
   * what it had to) and the clients' idle connections.
   */
  async close(): Promise<void> {
    this.#outbox.flush();
    this.#options.port.close();
    for (const [id, resolve] of this.#answers) resolve({ type: 'gateway', id });
    this.#answers.clear();
    for (const client of this.#clients.values()) client.close();
    await this.#options.gateway.close();
  }

  #ask(id: number, message: ToLeases): Promise<FromLeases> {
    return new Promise((resolve) => {
      this.#answers.set(id, resolve);
      this.#outbox.post(message);
    });
  }

  async #send(
    to: string,
    path: string,
    request: InvokeRequest,
    ours: Record<string, string>,
    limits: CallLimits,
  ): Promise<InvokeResult> {
    const { origin, base } = this.#target(to);
    const client = this.#clients.get(origin) ?? this.#client(origin);
    // As through the gateway, whose Host the watchdog passes on.
    const headers: string[] = ['Host', this.#options.gatewayHost];
    let forwardedHost = false;
    let forwardedFor = false;
    for (const name in request.headers) {
      const lower = name.toLowerCase();
      if (notSentOn.has(lower) || ourHeaders.has(lower)) continue;
      if (lower === 'x-forwarded-host') forwardedHost = true;
      else if (lower === 'x-forwarded-for') forwardedFor = true;
      const value = request.headers[name] as string | string[];
      if (typeof value === 'string') headers.push(name, value);
      else for (const one of value) headers.push(name, one);
    }
    for (const name in ours) headers.push(name, ours[name] as string);
    if (!forwardedHost) headers.push('X-Forwarded-Host', this.#options.gatewayHost);
    if (!forwardedFor) headers.push('X-Forwarded-For', '127.0.0.1');
    const {
      status,
      headers: out,
      body,
    } = await replicaExchange(
      client,
      {
        method: request.method,
        path: `${base}${path}`,
        headers,
        body: request.body.length > 0 ? asBuffer(request.body) : null,
      },
      limits,
    );
    out['x-call-id'] = ours['X-Call-Id'] as string;
    out['x-start-time'] = ours['X-Start-Time'] as string;
    return { status, headers: out, body, durationMs: 0 };
  }

  /** A replica's address parsed once, not a URL a call. */
  #target(to: string): { origin: string; base: string } {
    let target = this.#targets.get(to);
    if (!target) {
      const url = new URL(to);
      target = { origin: url.origin, base: url.pathname === '/' ? '' : url.pathname };
      if (this.#targets.size >= maxClients) this.#targets.clear();
      this.#targets.set(to, target);
    }
    return target;
  }

  #client(origin: string): UpstreamClient {
    const client = new UpstreamClient(new URL(origin));
    this.#clients.set(origin, client);
    // Replicas come and go (scaling, updates), each on a port of its own: the oldest client goes
    // once there are many (a call still on it finishes first).
    if (this.#clients.size > maxClients) {
      const [oldest, old] = this.#clients.entries().next().value as [string, UpstreamClient];
      this.#clients.delete(oldest);
      old.close();
    }
    return client;
  }
}

/** The same bytes as a Buffer, not copied. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function refusal(
  status: number,
  message: string,
  ours: Record<string, string>,
  startedAt: number,
): InvokeResult {
  return {
    status,
    headers: {
      [OpenFaasHeader.Internal]: 'gateway',
      'Content-Type': 'text/plain; charset=utf-8',
      'x-call-id': ours['X-Call-Id'] as string,
      'x-start-time': ours['X-Start-Time'] as string,
    },
    body: new TextEncoder().encode(`${message}\n`),
    durationMs: performance.now() - startedAt,
  };
}
