import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Pool, type Dispatcher } from 'undici';
import { NotFoundError, UnavailableError } from '../core/errors.js';
import { hopByHopHeaders } from '../core/http-headers.js';
import { joinFunctionName, splitFunctionName } from '../core/function-name.js';
import type { Provider } from '../core/provider.js';
import type { GatewayConfig } from './config.js';
import type { FunctionSeries, GatewayMetrics } from './metrics.js';

const internal = { 'X-OpenFaaS-Internal': 'gateway', 'Content-Type': 'text/plain; charset=utf-8' };

/** How long a call to a function at zero replicas waits for one to be ready, and how many may wait. */
const scaleFromZeroWaitMs = 30_000;
const maxHeldCalls = 1000;

interface InvokeDeps {
  provider: Provider;
  config: GatewayConfig;
  metrics: GatewayMetrics;
}

/**
 * `/function/:name` and `/function/:name/*`, any method: streams the call to a ready replica
 * and its answer back, with X-Call-Id, X-Start-Time and X-Duration-Seconds. 404 for an unknown
 * function, 503 when no replica can be had, 502 when the replica fails or is past
 * upstream_timeout; otherwise the function's own status. A call that reaches a replica counts in
 * `gateway_function_invocation_started`, and once over (the answer sent, or the caller gone) in
 * `gateway_function_invocation_total` and `gateway_functions_seconds` with the status sent.
 */
export function registerInvokeRoutes(app: FastifyInstance, deps: InvokeDeps): void {
  const pools = new Map<string, Pool>();
  const poolFor = (origin: string) => {
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

  let held = 0;
  const resolveReplica = async (name: string, namespace: string | undefined): Promise<URL> => {
    try {
      return await deps.provider.resolve(name, namespace);
    } catch (error) {
      if (!(error instanceof UnavailableError) || !deps.config.scaleFromZero) throw error;
    }
    // Scale from zero: wake the function to its minimum and hold the call until a replica is ready.
    const status = await deps.provider.get(name, namespace);
    if (!status)
      throw new NotFoundError(`function not found: ${joinFunctionName(name, namespace)}`);
    if (held >= maxHeldCalls)
      throw new UnavailableError(`too many calls waiting for ${name} to start`);
    held += 1;
    try {
      if ((status.replicas ?? 0) === 0) {
        const min = Number(
          status.labels?.['com.openfaas.scale.min'] ??
            status.annotations?.['com.openfaas.scale.min'] ??
            1,
        );
        await deps.provider.scale(name, Math.max(min, 1), namespace);
      }
      const deadline = Date.now() + scaleFromZeroWaitMs;
      for (;;) {
        try {
          return await deps.provider.resolve(name, namespace);
        } catch (error) {
          if (!(error instanceof UnavailableError) || Date.now() > deadline) throw error;
        }
        await sleep(10);
      }
    } finally {
      held -= 1;
    }
  };

  const invoke = async (
    request: FastifyRequest<{ Params: { name: string; '*'?: string } }>,
    reply: FastifyReply,
  ) => {
    const startedAt = performance.now();
    const startTime = `${BigInt(Date.now()) * 1_000_000n}`;
    const { name, namespace } = splitFunctionName(
      request.params.name,
      deps.config.functionNamespace,
    );
    const fullName = joinFunctionName(name, namespace);
    const callId = (request.headers['x-call-id'] as string | undefined) ?? randomUUID();

    let upstream: URL;
    try {
      upstream = await resolveReplica(name, namespace);
    } catch (error) {
      if (error instanceof NotFoundError) {
        return reply.code(404).headers(internal).send(`function not found: ${fullName}\n`);
      }
      if (error instanceof UnavailableError) {
        return reply.code(503).headers(internal).send(`no replica of ${fullName} is ready\n`);
      }
      throw error;
    }
    const series = deps.metrics.function(fullName);
    series.start();
    const finishOnce = once(series, startedAt);

    const rest = request.params['*'] ?? '';
    const queryAt = request.raw.url?.indexOf('?') ?? -1;
    const query = queryAt >= 0 ? (request.raw.url ?? '').slice(queryAt) : '';
    const headers = forwardable(request.headers);
    headers['x-call-id'] = callId;
    headers['x-start-time'] = startTime;
    headers['x-forwarded-host'] ??= request.headers.host ?? '';
    headers['x-forwarded-for'] ??= request.ip ?? '';
    const hasBody =
      request.headers['content-length'] !== undefined ||
      request.headers['transfer-encoding'] !== undefined;

    let answer: Dispatcher.ResponseData;
    try {
      answer = await poolFor(upstream.origin).request({
        method: request.method,
        path: `/${rest}${query}`,
        headers,
        body: hasBody ? request.raw : null,
      });
    } catch (error) {
      finishOnce(502);
      return reply
        .code(502)
        .headers({ ...internal, 'X-Call-Id': callId })
        .send(`cannot reach ${fullName}: ${(error as Error).message}\n`);
    }
    reply.hijack();
    const out: Record<string, string | string[]> = {};
    for (const [key, value] of Object.entries(answer.headers)) {
      if (value !== undefined && !hopByHopHeaders.has(key)) out[key] = value;
    }
    out['x-call-id'] = callId;
    out['x-start-time'] = startTime;
    out['x-duration-seconds'] ??= ((performance.now() - startedAt) / 1000).toFixed(6);
    const finish = () => finishOnce(answer.statusCode);
    reply.raw.once('finish', finish);
    reply.raw.once('close', finish);
    reply.raw.writeHead(answer.statusCode, out);
    answer.body.pipe(reply.raw);
    answer.body.once('error', () => reply.raw.destroy());
  };

  const schema = {
    summary: 'Invoke a function (any method; bodies and headers pass through)',
    statuses: {
      200: "the function's own status and answer",
      404: 'no such function',
      502: 'the replica failed or passed upstream_timeout',
      503: 'no replica is ready',
    },
  };
  app.all('/function/:name', { schema }, invoke);
  app.all('/function/:name/*', { schema }, invoke);
}

/** Records the end of a call in the metrics, the first time only (finish and close both come). */
function once(series: FunctionSeries, startedAt: number): (code: number) => void {
  let done = false;
  return (code) => {
    if (done) return;
    done = true;
    series.finish(code, (performance.now() - startedAt) / 1000);
  };
}

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined && !hopByHopHeaders.has(key)) out[key] = value;
  }
  return out;
}
