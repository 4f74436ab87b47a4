import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { NotImplementedError } from '../core/errors.js';
import type { Secret } from '../core/function-types.js';
import type { Provider, SecretStore } from '../core/provider.js';
import type { GatewayConfig } from './config.js';
import { knownFields } from './known-fields.js';
import {
  NamespaceQuerySchema,
  SecretNameSchema,
  SecretSchema,
  type SecretBody,
} from './request-schemas.js';

/**
 * `/system/secrets`: GET lists names (never values), POST creates (201; 409 if it exists), PUT
 * updates (200; 404 if unknown), DELETE `{name}` removes (202, as faas-cli expects; 404 if unknown). 501 when the
 * provider has no secrets.
 */
export function registerSecretsRoutes(
  scope: FastifyInstance,
  { provider, config }: { provider: Provider; config: GatewayConfig },
): void {
  const app = scope.withTypeProvider<TypeBoxTypeProvider>();
  const store = (): SecretStore => {
    if (!provider.secrets) throw new NotImplementedError('this provider has no secrets');
    return provider.secrets;
  };
  const namespaceOf = (query: { namespace?: string }, fromBody?: string) =>
    fromBody || query.namespace || config.functionNamespace;
  const toSecret = (body: SecretBody, query: { namespace?: string }): Secret => ({
    ...knownFields(SecretSchema, body),
    namespace: namespaceOf(query, body.namespace),
  });

  app.get(
    '/system/secrets',
    {
      schema: {
        querystring: NamespaceQuerySchema,
        summary: 'List secrets (names only)',
        statuses: { 200: 'the names', 501: 'no secrets in this provider' },
      },
    },
    async (request) => store().list(namespaceOf(request.query)),
  );
  app.post(
    '/system/secrets',
    {
      schema: {
        body: SecretSchema,
        querystring: NamespaceQuerySchema,
        summary: 'Create a secret',
        statuses: { 201: 'created', 409: 'it exists', 501: 'no secrets in this provider' },
      },
    },
    async (request, reply) => {
      await store().create(toSecret(request.body, request.query));
      return reply.code(201).send();
    },
  );
  app.put(
    '/system/secrets',
    {
      schema: {
        body: SecretSchema,
        querystring: NamespaceQuerySchema,
        summary: 'Update a secret',
        statuses: { 200: 'updated', 404: 'no such secret', 501: 'no secrets in this provider' },
      },
    },
    async (request, reply) => {
      await store().update(toSecret(request.body, request.query));
      return reply.code(200).send();
    },
  );
  app.delete(
    '/system/secrets',
    {
      schema: {
        body: SecretNameSchema,
        querystring: NamespaceQuerySchema,
        summary: 'Remove a secret',
        statuses: { 202: 'removed', 404: 'no such secret', 501: 'no secrets in this provider' },
      },
    },
    async (request, reply) => {
      await store().remove(request.body.name, namespaceOf(request.query, request.body.namespace));
      return reply.code(202).send();
    },
  );
}
