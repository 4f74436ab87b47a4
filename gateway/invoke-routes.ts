import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type * as Undici from 'undici';
import type { Dispatcher, Pool } from 'undici';
import { FnbusError, httpAnswer, NotFoundError, UnavailableError } from '../core/errors.js';
import { hopByHopHeaders } from '../core/http-headers.js';
import { isDnsLabel, joinFunctionName, splitFunctionName } from '../core/function-name.js';
import { startTimeNow } from '../core/openfaas-names.js';
import type { Provider } from '../core/provider.js';
import { callUrlParts } from './call-url.js';
import { ScaleFromZero } from './scale-from-zero.js';
import type { GatewayConfig } from './config.js';
import type { LocalReplica, ResolveLocal } from './local-replica.js';
import type { FunctionSeries, GatewayMetrics } from './metrics.js';

const internal = { 'X-OpenFaaS-Internal': 'gateway', 'Content-Type': 'text/plain; charset=utf-8' };

/** How long a call to a function at zero replicas waits for one to be ready, and how many may wait. */
const scaleFromZeroWaitMs = 30_000;
const maxHeldCalls = 1000;

interface InvokeDeps {
  provider: Provider;
  config: GatewayConfig;
  metrics: GatewayMetrics;
  /** The in-process fast path, when the provider's replicas live in this process. */
  resolveLocal?: ResolveLocal;
}

/**
 * `/function/:name` and `/function/:name/*`, any method: hands the call to a ready replica (in
 * this process when the provider's replicas live here, else over a kept-alive pool, streaming
 * both bodies), with X-Call-Id, X-Start-Time and X-Duration-Seconds. 404 for an unknown
 * function, 503 when no replica can be had, 502 when the replica fails or is past
 * upstream_timeout; otherwise the function's own status. A call that reaches a replica counts in
 * `gateway_function_invocation_started`, and once over (the answer sent, or the caller gone) in
 * `gateway_function_invocation_total` and `gateway_functions_seconds` with the status sent.
 */
export function registerInvokeRoutes(app: FastifyInstance, deps: InvokeDeps): void {
  const pools = new Map<string, Pool>();
  /** undici is loaded on the first remote call: a provider whose replicas are local never needs it. */
  let undici: Promise<typeof Undici> | undefined;
  const createPool = async (origin: string) => {
    const { Pool } = await (undici ??= import('undici'));
    let pool = pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: 256,
        headersTimeout: deps.config.upstreamTimeoutMs,
        bodyTimeout: deps.config.upstreamTimeoutMs,
      });
      pools.set(origin, pool);
    }
    return pool;
  };
  app.addHook('onClose', async () => {
    await Promise.all([...pools.values()].map((pool) => pool.close()));
  });
  // Bodies stream through untouched: no parser reads them here.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  /** A ready replica: one serving in this process when the provider has them, else a URL. */
  const locate = (name: string, namespace: string | undefined) =>
    deps.resolveLocal?.(name, namespace) ?? deps.provider.resolve(name, namespace);

  /** A ready local replica, found without waiting (every call); undefined for none ready. */
  const readyLocal = (name: string, namespace: string | undefined) => {
    try {
      return deps.resolveLocal?.(name, namespace);
    } catch (error) {
      if (error instanceof UnavailableError) return undefined;
      throw error;
    }
  };

  const scaleFromZero = new ScaleFromZero(deps.provider, {
    waitMs: scaleFromZeroWaitMs,
    maxHeld: maxHeldCalls,
  });
  const resolveReplica = async (
    name: string,
    namespace: string | undefined,
  ): Promise<LocalReplica | URL> => {
    try {
      return await locate(name, namespace);
    } catch (error) {
      if (!(error instanceof UnavailableError) || !deps.config.scaleFromZero) throw error;
    }
    // Scale from zero: held until the function's one wake-up loop finds a replica ready.
    await scaleFromZero.wait(name, namespace);
    return await locate(name, namespace);
  };

  const invoke = async (
    request: FastifyRequest<{ Params: { name: string; '*'?: string } }>,
    reply: FastifyReply,
  ) => {
    const startedAt = performance.now();
    const startTime = startTimeNow();
    const { name, namespace } = splitFunctionName(
      request.params.name,
      deps.config.functionNamespace,
    );
    const fullName = joinFunctionName(name, namespace);
    const callId = (request.headers['x-call-id'] as string | undefined) ?? randomUUID();

    // A name no function can have (empty, not a DNS label) is not found on any provider: a
    // remote one would answer its own 400 about the lookup instead.
    if (!isDnsLabel(name)) {
      return reply.code(404).headers(internal).send(`function not found: ${fullName}\n`);
    }
    let replica: LocalReplica | URL | undefined;
    // A call that waits for a replica counts as waiting until it has started (series.start),
    // so the idler never puts the function back to zero under it.
    let waits = false;
    try {
      replica = readyLocal(name, namespace);
      if (replica === undefined) {
        waits = true;
        deps.metrics.waiting(fullName, 1);
        replica = await resolveReplica(name, namespace);
      }
    } catch (error) {
      if (waits) deps.metrics.waiting(fullName, -1);
      if (error instanceof NotFoundError) {
        return reply.code(404).headers(internal).send(`function not found: ${fullName}\n`);
      }
      if (error instanceof UnavailableError) {
        return reply.code(503).headers(internal).send(`no replica of ${fullName} is ready\n`);
      }
      // Another refusal of the provider's (a function it keeps but did not start): its own word.
      if (error instanceof FnbusError) {
        const answer = httpAnswer(error);
        return reply
          .code(answer.status)
          .headers({ ...internal, ...answer.headers })
          .send(answer.text);
      }
      throw error;
    }
    const series = deps.metrics.function(fullName);
    series.start();
    if (waits) deps.metrics.waiting(fullName, -1);
    const call: CallContext = { callId, startTime, startedAt, series };
    // Raw, as the caller sent it: an encoded `?` (%3F) stays in the path, never the query.
    const parts = callUrlParts(request.raw.url ?? '');
    const path = `${parts.path || '/'}${parts.query === undefined ? '' : `?${parts.query}`}`;
    if (replica instanceof URL) return proxy(request, reply, replica, path, call);
    serveLocally(request, reply, replica, path, call);
  };

  /** One hop: the replica lives in this process and answers on the caller's own response. */
  const serveLocally = (
    request: FastifyRequest,
    reply: FastifyReply,
    replica: LocalReplica,
    path: string,
    call: CallContext,
  ) => {
    reply.hijack();
    const req = request.raw;
    const res = reply.raw;
    req.url = path;
    setRequestHeader(req, 'X-Call-Id', call.callId);
    setRequestHeader(req, 'X-Start-Time', call.startTime);
    if (req.headers['x-forwarded-host'] === undefined) {
      setRequestHeader(req, 'X-Forwarded-Host', request.headers.host ?? '');
    }
    if (req.headers['x-forwarded-for'] === undefined) {
      setRequestHeader(req, 'X-Forwarded-For', request.ip ?? '');
    }
    res.setHeader('X-Call-Id', call.callId);
    res.setHeader('X-Start-Time', call.startTime);
    res.once('close', () => finish(call, res.statusCode));
    replica.serve(req, res, deps.config.upstreamTimeoutMs);
  };

  /** Two hops: the replica listens elsewhere; the call goes over a kept-alive pool. */
  const proxy = async (
    request: FastifyRequest,
    reply: FastifyReply,
    upstream: URL,
    path: string,
    call: CallContext,
  ) => {
    const headers = forwardable(request.headers);
    headers['x-call-id'] = call.callId;
    headers['x-start-time'] = call.startTime;
    headers['x-forwarded-host'] ??= request.headers.host ?? '';
    headers['x-forwarded-for'] ??= request.ip ?? '';
    const hasBody =
      request.headers['content-length'] !== undefined ||
      request.headers['transfer-encoding'] !== undefined;

    let answer: Dispatcher.ResponseData;
    try {
      const pool = pools.get(upstream.origin) ?? (await createPool(upstream.origin));
      answer = await pool.request({
        method: request.method,
        // A URL with a path of its own (a faas-provider's /function/<name>/) keeps it.
        path: upstream.pathname === '/' ? path : `${upstream.pathname.replace(/\/$/, '')}${path}`,
        headers,
        body: hasBody ? request.raw : null,
      });
    } catch (error) {
      // undici keeps a pool slot for good after refusing a request: start that pool afresh.
      if ((error as { code?: string }).code === 'UND_ERR_INVALID_ARG') {
        const pool = pools.get(upstream.origin);
        pools.delete(upstream.origin);
        pool?.close().catch(() => {});
      }
      finish(call, 502);
      return reply
        .code(502)
        .headers({ ...internal, 'X-Call-Id': call.callId })
        .send(`cannot reach ${upstream.origin}: ${(error as Error).message}\n`);
    }
    reply.hijack();
    const out = forwardable(answer.headers);
    out['x-call-id'] = call.callId;
    out['x-start-time'] = call.startTime;
    out['x-duration-seconds'] ??= ((performance.now() - call.startedAt) / 1000).toFixed(6);
    reply.raw.once('close', () => finish(call, answer.statusCode));
    reply.raw.writeHead(answer.statusCode, out);
    answer.body.pipe(reply.raw);
    answer.body.once('error', () => reply.raw.destroy());
  };

  const schema = {
    summary: 'Invoke a function (any method; bodies and headers pass through)',
    statuses: {
      200: "the function's answer",
      default: "the function's own status and answer, whatever they are",
      404: 'no such function',
      502: 'the replica failed or passed upstream_timeout',
      503: 'no replica is ready',
    },
  };
  app.all('/function/:name', { schema }, invoke);
  app.all('/function/:name/*', { schema }, invoke);
}

interface CallContext {
  callId: string;
  startTime: string;
  startedAt: number;
  series: FunctionSeries;
}

/** Records the end of a call in the metrics (at its close, or when the proxy could not send it). */
function finish(call: CallContext, code: number): void {
  call.series.finish(code, (performance.now() - call.startedAt) / 1000);
}

/** Sets a request header in both views node keeps of it (parsed, and raw as forwarded). */
function setRequestHeader(req: IncomingMessage, name: string, value: string): void {
  const lower = name.toLowerCase();
  req.headers[lower] = value;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() === lower) {
      raw[i + 1] = value;
      return;
    }
  }
  raw.push(name, value);
}

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined && !hopByHopHeaders.has(key)) out[key] = value;
  }
  return out;
}
