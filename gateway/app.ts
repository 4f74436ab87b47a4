import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError } from 'fastify';
import type { FunctionDeployment, FunctionStatus } from '../core/function-types.js';
import { FnbusError, NotFoundError, ValidationError } from '../core/errors.js';
import { joinFunctionName, splitFunctionName } from '../core/function-name.js';
import type { Logger } from '../core/logger.js';
import type { Provider } from '../core/provider.js';
import type { GatewayConfig } from './config.js';
import { registerInvokeRoutes } from './invoke-routes.js';
import { InvocationCounter } from './invocation-counter.js';
import {
  DeleteFunctionRequestSchema,
  FunctionDeploymentSchema,
  type FunctionDeploymentBody,
  NameParamsSchema,
  NamespaceQuerySchema,
  ScaleServiceRequestSchema,
} from './schemas.js';

export interface GatewayDeps {
  provider: Provider;
  config: GatewayConfig;
  logger?: Logger;
  version?: string;
}

/**
 * The gateway: OpenFaaS's API over a Provider. `/system/*` manages functions; `/function/*`
 * invokes them. Errors are mapped to HTTP here, in one place: a FnbusError answers with its own
 * status and message, anything else is a 500.
 */
export function buildGateway({ provider, config, version = '0.0.0' }: GatewayDeps) {
  const app = Fastify({
    bodyLimit: config.maxSystemBodyBytes,
    requestTimeout: config.readTimeoutMs,
    // OpenFaaS's Go decoder refuses wrong types rather than coercing them.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  const invocations = new InvocationCounter();

  app.setErrorHandler((error: FastifyError | FnbusError, _request, reply) => {
    if (error instanceof FnbusError) {
      return reply.code(error.status).type('text/plain').send(`${error.message}\n`);
    }
    const fastifyError = error;
    if (fastifyError.validation) {
      const where = fastifyError.validationContext ?? 'request';
      return reply.code(400).type('text/plain').send(`invalid ${where}: ${fastifyError.message}\n`);
    }
    const status = fastifyError.statusCode ?? 500;
    if (status >= 500) app.log.error(error);
    return reply.code(status).type('text/plain').send(`${fastifyError.message}\n`);
  });

  const namespaceOf = (query: { namespace?: string }, fromBody?: string) =>
    query.namespace ?? fromBody ?? config.functionNamespace;

  const withCount = (status: FunctionStatus): FunctionStatus => ({
    ...status,
    invocationCount: invocations.get(joinFunctionName(status.name, status.namespace)),
  });

  app.get('/healthz', async (_request, reply) => reply.type('text/plain').send('OK'));

  app.get('/system/info', async () => ({
    provider: await provider.info(),
    version: { release: version, sha: 'unknown', commit_message: '' },
    arch: process.arch === 'x64' ? 'x86_64' : process.arch,
  }));

  app.get('/system/namespaces', async () =>
    provider.namespaces ? provider.namespaces() : [config.functionNamespace],
  );

  app.get('/system/functions', { schema: { querystring: NamespaceQuerySchema } }, async (request) =>
    (await provider.list(namespaceOf(request.query))).map(withCount),
  );

  app.get(
    '/system/function/:name',
    { schema: { params: NameParamsSchema, querystring: NamespaceQuerySchema } },
    async (request) => {
      const { name, namespace } = splitFunctionName(
        request.params.name,
        namespaceOf(request.query),
      );
      const status = await provider.get(name, namespace);
      if (!status)
        throw new NotFoundError(`function not found: ${joinFunctionName(name, namespace)}`);
      return withCount(status);
    },
  );

  app.post(
    '/system/functions',
    { schema: { body: FunctionDeploymentSchema } },
    async (request, reply) => {
      await provider.deploy(toDeployment(request.body, config.functionNamespace));
      return reply.code(202).send();
    },
  );

  app.put(
    '/system/functions',
    { schema: { body: FunctionDeploymentSchema } },
    async (request, reply) => {
      await provider.update(toDeployment(request.body, config.functionNamespace));
      return reply.code(202).send();
    },
  );

  app.delete(
    '/system/functions',
    { schema: { body: DeleteFunctionRequestSchema, querystring: NamespaceQuerySchema } },
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
    registerInvokeRoutes(scope, { provider, config, invocations });
    done();
  });

  return app;
}

function toDeployment(body: FunctionDeploymentBody, defaultNamespace: string): FunctionDeployment {
  // registryAuth and network are deprecated by OpenFaaS and ignored.
  const { registryAuth: _registryAuth, network: _network, ...deployment } = body;
  return { ...deployment, namespace: body.namespace ?? defaultNamespace } as FunctionDeployment;
}
