import type { FastifyInstance, RouteOptions } from 'fastify';

declare module 'fastify' {
  interface FastifySchema {
    /** One line for the OpenAPI document. */
    summary?: string;
    /**
     * Status → meaning, for the OpenAPI document's `responses`: every status the route answers
     * itself (none declared: just 200). 400 (a schema or body refused), 401 (authenticated
     * routes) and 413 (routes with a body) are added where they apply; `default` is for a route
     * that passes another program's answer through (a function's).
     */
    statuses?: Partial<Record<number | 'default', string>>;
    /** Served but left out of the OpenAPI document (an alias kept for old clients). */
    hide?: boolean;
  }
}

type JsonObject = Record<string, unknown>;

// No route serves OPTIONS (the invoke routes answer it 405 themselves), nor the WebDAV methods.
const documentedMethods = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);
/** Methods whose body fastify reads (and may refuse with 400 or 413). */
const bodyMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export interface OpenApiOptions {
  title: string;
  version: string;
  /**
   * Whether a route needs basic auth: its operations then carry the `basicAuth` security scheme
   * and a 401. Not given: no route does (auth off).
   */
  authenticated?: (route: RouteOptions) => boolean;
}

/** One registered URL pattern (fastify's syntax) and every method served on it. */
interface KnownRoute {
  pattern: RegExp;
  /** No parameter: it matches one path, and wins over the patterns that also match it. */
  exact: boolean;
  methods: Set<string>;
}

const errorContent = { 'text/plain': { schema: { type: 'string' } } };

/**
 * The OpenAPI 3.1 document of the gateway, generated from its routes as they are registered:
 * their params, querystring and body schemas (TypeBox schemas are JSON Schema, which OpenAPI 3.1
 * takes as they are), their `summary` and `statuses`. Call before registering routes; `document()`
 * gives the result once they are. `allowedMethods(path)` tells which methods some route serves on
 * a path, for a 405 rather than a 404 to a method no route takes.
 */
export function collectOpenApi(app: FastifyInstance, options: OpenApiOptions) {
  const { title, version, authenticated = () => false } = options;
  const paths: Record<string, Record<string, JsonObject>> = {};
  const known = new Map<string, KnownRoute>();
  let anyAuthenticated = false;
  app.addHook('onRoute', (route: RouteOptions) => {
    const allMethods = Array.isArray(route.method) ? route.method : [route.method];
    const schema = route.schema ?? {};
    // A hidden alias is left out of `Allow` too: it must list what the document lists.
    if (schema.hide) return;
    const seen = known.get(route.url) ?? {
      pattern: patternOf(route.url),
      exact: !/[:*]/.test(route.url),
      methods: new Set(),
    };
    for (const method of allMethods) seen.methods.add(method);
    known.set(route.url, seen);

    const methods = allMethods.filter((m) => documentedMethods.has(m));
    if (methods.length === 0) return;
    const path = route.url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{path}');
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
    const secured = authenticated(route);
    anyAuthenticated ||= secured;
    paths[path] ??= {};
    for (const method of methods) {
      const statuses: Partial<Record<string, string>> = { ...schema.statuses };
      if (!schema.statuses) statuses[200] = 'OK';
      const readsBody = bodyMethods.has(method) && (schema.body !== undefined || !statuses.default);
      if (schema.params || schema.querystring || schema.body || readsBody)
        statuses[400] ??= 'bad input: says what was wrong';
      if (readsBody) statuses[413] ??= 'body over the limit';
      if (secured) statuses[401] ??= 'no credentials, or wrong ones';
      const responses: JsonObject = {};
      for (const [status, description] of Object.entries(statuses)) {
        // A pass-through route's 4xx/5xx may be the other program's, of any type.
        const ownError = /^[45]/.test(status) && !statuses.default;
        responses[status] = ownError ? { description, content: errorContent } : { description };
      }
      const operation: JsonObject = { responses };
      if (schema.summary) operation.summary = schema.summary;
      if (parameters.length > 0) operation.parameters = parameters;
      if (schema.body && bodyMethods.has(method)) {
        operation.requestBody = {
          required: true,
          content: { 'application/json': { schema: schema.body } },
        };
      }
      if (secured) operation.security = [{ basicAuth: [] }];
      paths[path][method.toLowerCase()] = operation;
    }
  });
  return {
    document: (): JsonObject =>
      // A copy through JSON: plain data, nothing the schemas carry beyond JSON Schema.
      JSON.parse(
        JSON.stringify({
          openapi: '3.1.0',
          info: { title, version },
          paths,
          ...(anyAuthenticated
            ? { components: { securitySchemes: { basicAuth: { type: 'http', scheme: 'basic' } } } }
            : {}),
        }),
      ) as JsonObject,
    /**
     * The methods served on `path` (no query): those of the route registered for exactly this
     * path, else of every route whose pattern matches it. None: no route knows the path.
     */
    allowedMethods(path: string): string[] {
      const matched = [...known.values()].filter((route) => route.pattern.test(path));
      const exact = matched.filter((route) => route.exact);
      const methods = new Set((exact.length > 0 ? exact : matched).flatMap((r) => [...r.methods]));
      return [...methods].sort();
    },
  };
}

/** A fastify URL pattern as a RegExp: `:name` is one segment, a trailing `*` anything. */
function patternOf(url: string): RegExp {
  const parts = url.split(/(:\w+|\*$)/);
  const source = parts
    .map((part) => {
      if (part === '*') return '.*';
      if (part.startsWith(':')) return '[^/]+';
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${source}$`);
}
