import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { NotFoundError, NotImplementedError, ValidationError } from '../core/errors.js';
import { withoutNulls } from '../core/function-deployment.js';
import type { FunctionNamespace } from '../core/function-types.js';
import type { NamespaceStore, Provider } from '../core/provider.js';
import type { GatewayConfig } from './config.js';
import { knownFields } from './known-fields.js';
import {
  FunctionNamespaceSchema,
  NameParamsSchema,
  type FunctionNamespaceBody,
} from './request-schemas.js';

/**
 * `/system/namespaces` (GET: the names) and `/system/namespace/{name}`, as faas-provider and
 * faas-cli's SDK use them: GET describes one (404 if unknown), POST creates (201; faas-cli posts
 * to `/system/namespace/` with the name in the body; 409 if it exists), PUT replaces its labels
 * and annotations (202), DELETE removes it (202; 409 while it holds functions). 501 when the
 * provider cannot manage namespaces.
 */
export function registerNamespacesRoutes(
  scope: FastifyInstance,
  { provider, config }: { provider: Provider; config: GatewayConfig },
): void {
  const app = scope.withTypeProvider<TypeBoxTypeProvider>();
  const store = (): NamespaceStore => {
    if (!provider.namespaceStore) {
      throw new NotImplementedError('namespaces cannot be managed on this provider');
    }
    return provider.namespaceStore;
  };
  const toNamespace = (body: FunctionNamespaceBody, fromPath?: string): FunctionNamespace => {
    // Fields OpenFaaS does not name are dropped, as its decoder ignores them.
    const given = withoutNulls(knownFields(FunctionNamespaceSchema, body)) as FunctionNamespace;
    const name = fromPath || given.name;
    if (!name) throw new ValidationError('name the namespace, in the path or the body');
    if (fromPath && given.name && given.name !== fromPath) {
      throw new ValidationError(`name "${given.name}" does not match the path's "${fromPath}"`);
    }
    return { ...given, name };
  };
  const statuses = { 501: 'this provider cannot manage namespaces' };

  app.get(
    '/system/namespaces',
    { schema: { summary: 'Namespaces', statuses: { 200: 'the namespaces' } } },
    async () => (provider.namespaces ? provider.namespaces() : [config.functionNamespace]),
  );
  app.get(
    '/system/namespace/:name',
    {
      schema: {
        params: NameParamsSchema,
        summary: 'Describe a namespace',
        statuses: { 200: 'FunctionNamespace', 404: 'no such namespace', ...statuses },
      },
    },
    async (request) => {
      const found = await store().get(request.params.name);
      if (!found) throw new NotFoundError(`namespace "${request.params.name}" not found`);
      return found;
    },
  );
  const create = {
    schema: {
      body: FunctionNamespaceSchema,
      summary: 'Create a namespace',
      statuses: { 201: 'created', 409: 'it exists', ...statuses },
    },
  };
  app.post('/system/namespace/', create, async (request, reply) => {
    await store().create(toNamespace(request.body));
    return reply.code(201).send();
  });
  app.post(
    '/system/namespace/:name',
    { schema: { ...create.schema, params: NameParamsSchema } },
    async (request, reply) => {
      await store().create(toNamespace(request.body, request.params.name));
      return reply.code(201).send();
    },
  );
  app.put(
    '/system/namespace/:name',
    {
      schema: {
        params: NameParamsSchema,
        body: FunctionNamespaceSchema,
        summary: "Replace a namespace's labels and annotations",
        statuses: { 202: 'accepted', 404: 'no such namespace', ...statuses },
      },
    },
    async (request, reply) => {
      await store().update(toNamespace(request.body, request.params.name));
      return reply.code(202).send();
    },
  );
  app.delete(
    '/system/namespace/:name',
    {
      schema: {
        params: NameParamsSchema,
        summary: 'Remove a namespace',
        statuses: {
          202: 'accepted',
          404: 'no such namespace',
          409: 'it holds functions, or is the default',
          ...statuses,
        },
      },
    },
    async (request, reply) => {
      await store().remove(request.params.name);
      return reply.code(202).send();
    },
  );
}
