import type { FastifyInstance, RouteOptions } from 'fastify';

declare module 'fastify' {
  interface FastifySchema {
    /** One line for the OpenAPI document. */
    summary?: string;
    /** Status → meaning, for the OpenAPI document's `responses`. */
    statuses?: Record<number, string>;
    /** Left out of the OpenAPI document (an alias kept for older clients). */
    hide?: boolean;
  }
}

type JsonObject = Record<string, unknown>;

const documentedMethods = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * The OpenAPI 3.1 document of the gateway, generated from its routes as they are registered:
 * their params, querystring and body schemas (TypeBox schemas are JSON Schema, which OpenAPI 3.1
 * takes as they are), their `summary` and `statuses`. Call before registering routes; `document()`
 * gives the result once they are.
 */
export function collectOpenApi(app: FastifyInstance, info: { title: string; version: string }) {
  const paths: Record<string, Record<string, JsonObject>> = {};
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter((m) =>
      documentedMethods.has(m),
    );
    if (methods.length === 0 || route.schema?.hide === true) return;
    const path = route.url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{path}');
    const schema = route.schema ?? {};
    const parameters: JsonObject[] = [];
    for (const [where, source] of [
      ['path', schema.params],
      ['query', schema.querystring],
    ] as const) {
      const object = source as { properties?: JsonObject; required?: string[] } | undefined;
      for (const [name, property] of Object.entries(object?.properties ?? {})) {
        parameters.push({
          name,
          in: where,
          required: where === 'path' || (object?.required ?? []).includes(name),
          schema: property,
        });
      }
    }
    if (path.endsWith('{path}') && !parameters.some((p) => p.name === 'path')) {
      parameters.push({ name: 'path', in: 'path', required: true, schema: { type: 'string' } });
    }
    for (const named of path.matchAll(/\{(\w+)\}/g)) {
      if (!parameters.some((p) => p.name === named[1] && p.in === 'path'))
        parameters.push({ name: named[1], in: 'path', required: true, schema: { type: 'string' } });
    }
    const responses: JsonObject = {};
    for (const [status, description] of Object.entries(schema.statuses ?? {})) {
      responses[status] = { description };
    }
    responses.default = { description: 'an error: text/plain, saying what went wrong' };
    const operation: JsonObject = { responses };
    if (schema.summary) operation.summary = schema.summary;
    if (parameters.length > 0) operation.parameters = parameters;
    if (schema.body) {
      operation.requestBody = {
        required: true,
        content: { 'application/json': { schema: schema.body } },
      };
    }
    paths[path] ??= {};
    for (const method of methods) paths[path][method.toLowerCase()] = operation;
  });
  return {
    document: (): JsonObject =>
      // A copy through JSON: plain data, nothing the schemas carry beyond JSON Schema.
      JSON.parse(JSON.stringify({ openapi: '3.1.0', info, paths })) as JsonObject,
  };
}
