import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyError,
  type FastifyReply,
  type FastifyRequest,
  type RouteOptions,
} from 'fastify';
import type { FunctionStatus } from '../core/function-types.js';
import { FnbusError, NotFoundError, httpAnswer, ValidationError } from '../core/errors.js';
import { normalizeDeployment } from '../core/function-deployment.js';
import { withFunctionLabel } from '../core/function-rules.js';
import { joinFunctionName, splitFunctionName } from '../core/function-name.js';
import type { VersionInfo } from '../core/info-types.js';
import type { Logger } from '../core/logger.js';
import type { Provider } from '../core/provider.js';
import type { Queue } from '../core/queue.js';
import type { Registry } from 'prom-client';
import { drainRequest } from './drain-request.js';
import type { GatewayConfig } from './config.js';
import {
  loadCredentials,
  needsCredentials,
  registerBasicAuth,
  type BasicAuthCredentials,
} from './auth.js';
import { registerAsyncRoutes } from './async-routes.js';
import { registerAlertRoute } from './alert-route.js';
import { Autoscaler } from './autoscaler.js';
import { registerInvokeRoutes } from './invoke-routes.js';
import type { ResolveLocal } from './local-replica.js';
import { registerLogsRoutes } from './logs-routes.js';
import { knownFields } from './known-fields.js';
import { registerNamespacesRoutes } from './namespaces-routes.js';
import { GatewayMetrics } from './metrics.js';
import { collectOpenApi } from './openapi.js';
import { registerSecretsRoutes } from './secrets-routes.js';
import {
  DeleteFunctionRequestSchema,
  FunctionDeploymentSchema,
  NameParamsSchema,
  NamespaceQuerySchema,
  ScaleServiceRequestSchema,
} from './request-schemas.js';

export interface GatewayDeps {
  provider: Provider;
  /**
   * The provider's replicas that serve in this process, if it has such (the process provider's
   * resolveLocal): calls are handed to them directly rather than proxied to resolve()'s URL.
   */
  resolveLocal?: ResolveLocal;
  config: GatewayConfig;
  logger?: Logger;
  /** The gateway's own release and commit, for `/system/info`. */
  version?: VersionInfo;
  /**
   * Basic-auth credentials for `/system/*` when `config.basicAuth` is on and the files
   * `basic-auth-user` and `basic-auth-password` are not in `config.secretMountPath` (from env, say).
   */
  credentials?: BasicAuthCredentials;
  /** The async path's queue; without one, the async routes answer 501. */
  queue?: Queue;
  /**
   * Where the gateway's metrics go, and what `/metrics` serves: give one to serve other
   * components' metrics beside them (the connectors in `fnbus up`). Default: its own.
   */
  registry?: Registry;
  /** More Prometheus text for `/metrics`, from components elsewhere (a worker thread). */
  moreMetrics?: () => Promise<string>;
  /**
   * Why the gateway is not healthy (a worker down, stopping), or undefined when it is: `/healthz`
   * answers 503 with the reason meanwhile.
   */
  health?: () => string | undefined;
  /** Handlers of other layers served on this port (`fnbus up`'s webhooks). */
  mounts?: RawMount[];
}

/**
 * A plain node:http handler served under `prefix` (any path below it, POST and the methods
 * listed), given the raw request with its body unread: it answers everything itself.
 */
export interface RawMount {
  /** Ends with `/`, e.g. `/webhook/`. */
  prefix: string;
  methods: ('GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE')[];
  summary: string;
  /** For the OpenAPI document, as a route's `statuses`. */
  statuses?: Partial<Record<number | 'default', string>>;
  handler: (req: IncomingMessage, res: ServerResponse) => void;
}

/** Where the gateway serves its OpenAPI document (behind basic auth, as all of `/system/*`). */
export const openApiPath = '/system/openapi.json';

/**
 * The gateway: OpenFaaS's API over a Provider. `/system/*` manages functions; `/function/*`
 * invokes them. Errors are mapped to HTTP here, in one place: a FnbusError answers with its own
 * status and message, anything else is a 500. `/metrics` serves Prometheus metrics, and
 * `/system/openapi.json` the OpenAPI document generated from the routes' schemas.
 *
 * With `config.basicAuth`, the credentials are read here, once: a ConfigError if there are none.
 */
export function buildGateway({
  provider,
  resolveLocal,
  config,
  logger,
  version = { release: '0.0.0', sha: 'unknown', commit_message: '' },
  credentials,
  queue,
  registry,
  moreMetrics,
  health,
  mounts = [],
}: GatewayDeps) {
  const auth = config.basicAuth ? loadCredentials(config.secretMountPath, credentials) : undefined;
  const app = Fastify({
    bodyLimit: config.maxSystemBodyBytes,
    requestTimeout: config.readTimeoutMs,
    // OpenFaaS's Go decoder refuses wrong types rather than coercing them.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  // OpenFaaS decodes /system bodies as JSON whatever their Content-Type (curl -d sends a form
  // type); so does fnbus. The invoke routes have their own, pass-through parser.
  app.addContentTypeParser('*', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));
  const namespaces = async () =>
    provider.namespaces ? provider.namespaces() : [config.functionNamespace];
  const metrics = new GatewayMetrics(registry, async () => {
    const replicas = new Map<string, number>();
    for (const namespace of await namespaces()) {
      for (const fn of await provider.list(namespace)) {
        replicas.set(joinFunctionName(fn.name, fn.namespace ?? namespace), fn.replicas ?? 0);
      }
    }
    return replicas;
  });
  const openApi = collectOpenApi(app, {
    title: 'fnbus gateway',
    version: version.release,
    ...(auth
      ? { authenticated: (route: RouteOptions) => needsCredentials(route.url, route.config) }
      : {}),
  });
  if (auth) registerBasicAuth(app, auth);

  // A path some route serves, asked with a method none takes: 405 with the methods that are
  // (RFC 9110), where a 404 would say the path does not exist. Answered on request, before
  // fastify looks at the body (a QUERY without Content-Type would be a 400 otherwise).
  const unrouted = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?', 1)[0] ?? '';
    const allowed = openApi.allowedMethods(path);
    if (allowed.length > 0) {
      return reply
        .code(405)
        .header('Allow', allowed.join(', '))
        .type('text/plain')
        .send(`${request.method} is not allowed here: ${allowed.join(', ')}\n`);
    }
    return reply.code(404).type('text/plain').send(`no route: ${request.method} ${path}\n`);
  };
  // A callback hook, not an async one: it runs on every request.
  app.addHook('onRequest', (request, reply, done) => {
    if (request.is404) unrouted(request, reply);
    else done();
  });

  app.setErrorHandler(async (error: FastifyError | FnbusError, request, reply) => {
    // Refused before its body was read (too large, a type no parser takes): the rest is read
    // first, so that the client, still sending, gets the answer rather than a reset.
    await drainRequest(request.raw);
    if (!(error instanceof FnbusError)) {
      // Fastify's own refusals of a request (schema, body, parse): a 4xx that says why.
      const fastifyError = error;
      if (fastifyError.validation) {
        const where = fastifyError.validationContext ?? 'request';
        return reply
          .code(400)
          .type('text/plain')
          .send(`invalid ${where}: ${fastifyError.message}\n`);
      }
      const status = fastifyError.statusCode ?? 500;
      if (status < 500) {
        return reply.code(status).type('text/plain').send(`${fastifyError.message}\n`);
      }
      // Unexpected: the operator needs to know, without a path of this machine or a stack.
      logger?.error(
        {
          method: request.method,
          route: request.routeOptions.url,
          reason: unexpectedReason(error),
        },
        'answered 500: unexpected error',
      );
    }
    // Everything else, as core/errors.ts maps it: a FnbusError its own way, any other a 500.
    const answer = httpAnswer(error);
    return reply.code(answer.status).headers(answer.headers).type('text/plain').send(answer.text);
  });

  const namespaceOf = (query: { namespace?: string }, fromBody?: string) =>
    query.namespace ?? fromBody ?? config.functionNamespace;

  // faas_function on every function, as OpenFaaS's providers label them, whatever the provider.
  const withCount = (status: FunctionStatus, counts: Map<string, number>): FunctionStatus => ({
    ...status,
    labels: withFunctionLabel(status.labels, status.name),
    invocationCount: counts.get(joinFunctionName(status.name, status.namespace)) ?? 0,
  });

  app.get(
    '/healthz',
    { schema: { summary: 'Health', statuses: { 200: 'OK', 503: 'unhealthy: the reason' } } },
    async (_request, reply) => {
      const unhealthy = health?.();
      if (unhealthy) return reply.code(503).type('text/plain').send(`${unhealthy}\n`);
      return reply.type('text/plain').send('OK');
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        statuses: { 200: 'the metrics' },
      },
    },
    async (_request, reply) => {
      const { contentType, body } = await metrics.text();
      return reply.type(contentType).send(moreMetrics ? body + (await moreMetrics()) : body);
    },
  );

  app.get(
    openApiPath,
    { schema: { summary: 'This document', statuses: { 200: 'OpenAPI 3.1, JSON' } } },
    (_request, reply) => reply.send(openApi.document()),
  );

  app.get(
    '/system/info',
    { schema: { summary: 'Gateway and provider info', statuses: { 200: 'GatewayInfo' } } },
    async () => ({
      provider: await provider.info(),
      version: { commit_message: '', ...version },
      arch: process.arch === 'x64' ? 'x86_64' : process.arch,
    }),
  );

  registerNamespacesRoutes(app, { provider, config });

  app.get(
    '/system/functions',
    {
      schema: {
        querystring: NamespaceQuerySchema,
        summary: 'List functions',
        statuses: { 200: 'FunctionStatus[]' },
      },
    },
    async (request) => {
      const [functions, counts] = await Promise.all([
        provider.list(namespaceOf(request.query)),
        metrics.invocationCounts(),
      ]);
      return functions.map((status) => withCount(status, counts));
    },
  );

  app.get(
    '/system/function/:name',
    {
      schema: {
        params: NameParamsSchema,
        querystring: NamespaceQuerySchema,
        summary: 'Describe a function',
        statuses: { 200: 'FunctionStatus', 404: 'no such function' },
      },
    },
    async (request) => {
      const { name, namespace } = splitFunctionName(
        request.params.name,
        namespaceOf(request.query),
      );
      const status = await provider.get(name, namespace);
      if (!status)
        throw new NotFoundError(`function not found: ${joinFunctionName(name, namespace)}`);
      return withCount(status, await metrics.invocationCounts());
    },
  );

  app.post(
    '/system/functions',
    {
      schema: {
        body: FunctionDeploymentSchema,
        summary: 'Deploy a function',
        statuses: { 202: 'accepted', 409: 'it exists, or max_functions is reached' },
      },
    },
    async (request, reply) => {
      await provider.deploy(
        normalizeDeployment(
          knownFields(FunctionDeploymentSchema, request.body),
          config.functionNamespace,
        ),
      );
      return reply.code(202).send();
    },
  );

  app.put(
    '/system/functions',
    {
      schema: {
        body: FunctionDeploymentSchema,
        summary: 'Update a function',
        statuses: { 202: 'accepted', 404: 'no such function', 409: 'a replica cap is reached' },
      },
    },
    async (request, reply) => {
      await provider.update(
        normalizeDeployment(
          knownFields(FunctionDeploymentSchema, request.body),
          config.functionNamespace,
        ),
      );
      return reply.code(202).send();
    },
  );

  app.delete(
    '/system/functions',
    {
      schema: {
        body: DeleteFunctionRequestSchema,
        querystring: NamespaceQuerySchema,
        summary: 'Remove a function',
        statuses: { 202: 'accepted', 404: 'no such function' },
      },
    },
    async (request, reply) => {
      await provider.remove(
        request.body.functionName,
        namespaceOf(request.query, request.body.namespace),
      );
      return reply.code(202).send();
    },
  );

  app.post(
    '/system/scale-function/:name',
    {
      schema: {
        params: NameParamsSchema,
        body: ScaleServiceRequestSchema,
        querystring: NamespaceQuerySchema,
        summary: 'Set the desired replicas of a function',
        statuses: { 202: 'accepted', 404: 'no such function', 409: 'a replica cap is reached' },
      },
    },
    async (request, reply) => {
      const { name, namespace } = splitFunctionName(
        request.params.name,
        namespaceOf(request.query, request.body.namespace),
      );
      if (request.body.serviceName && request.body.serviceName !== name) {
        throw new ValidationError(
          `serviceName "${request.body.serviceName}" does not match the path's "${name}"`,
        );
      }
      await provider.scale(name, request.body.replicas, namespace);
      return reply.code(202).send();
    },
  );

  app.register((scope, _options, done) => {
    registerInvokeRoutes(scope, {
      provider,
      config,
      metrics,
      ...(resolveLocal ? { resolveLocal } : {}),
    });
    done();
  });
  registerAlertRoute(app, { provider, config, ...(logger ? { logger } : {}) });
  // The autoscaler and idler run while the gateway serves (from ready to close).
  if (config.autoscale.enabled || config.autoscale.idler) {
    const autoscaler = new Autoscaler({
      provider,
      metrics,
      namespaces,
      settings: config.autoscale,
      ...(logger ? { logger } : {}),
    });
    app.addHook('onReady', (done) => {
      autoscaler.start();
      done();
    });
    app.addHook('onClose', async () => autoscaler.stop());
  }
  registerAsyncRoutes(app, { provider, queue, config });
  registerLogsRoutes(app, { provider, config });
  registerSecretsRoutes(app, { provider, config });
  for (const mount of mounts) {
    app.register((scope, _options, done) => {
      // The body stays unread, for the handler to read (and limit) itself.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', (_request, _payload, parsed) => parsed(null));
      scope.route({
        method: mount.methods,
        url: `${mount.prefix}*`,
        schema: { summary: mount.summary, statuses: mount.statuses ?? { default: 'its answer' } },
        handler: (request, reply) => {
          reply.hijack();
          mount.handler(request.raw, reply.raw);
        },
      });
      done();
    });
  }

  // The series `/function/*` counts calls in, for a host that hands calls to replicas itself
  // (the queue worker of `fnbus up`): its calls count as the gateway's own.
  return Object.assign(app, { functionMetrics: metrics });
}

/** An unexpected error in a line for the log: its code or name, and its message without paths. */
function unexpectedReason(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  const message = error.message.replace(/(^|[\s'"(=])\/[^\s'")]*/g, '$1…');
  return `${typeof code === 'string' ? code : error.name}: ${message}`.slice(0, 300);
}
