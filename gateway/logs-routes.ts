import { once } from 'node:events';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { NotFoundError, NotImplementedError, ValidationError } from '../core/errors.js';
import { joinFunctionName, splitFunctionName } from '../core/function-name.js';
import type { LogRequest } from '../core/log-types.js';
import type { Provider } from '../core/provider.js';
import type { GatewayConfig } from './config.js';
import { LogsQuerySchema } from './request-schemas.js';

/** RFC 3339 date-time (with a zone), as Go's time.RFC3339Nano parses it. */
const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Go's strconv.ParseBool; '' (as in `?follow`) is false. */
const goBools: Record<string, boolean> = {
  '': false,
  '1': true,
  t: true,
  T: true,
  true: true,
  TRUE: true,
  True: true,
  '0': false,
  f: false,
  F: false,
  false: false,
  FALSE: false,
  False: false,
};

/**
 * `GET /system/logs`: the function's log lines as `application/x-ndjson`, one LogMessage a line,
 * written as the provider yields them. With `follow` the answer stays open until the caller goes:
 * its leaving aborts the provider's iterator. 400 for a bad `tail`, `follow` or `since` (OpenFaaS
 * says 422; fnbus answers every bad input with 400), 404 for an unknown function, 501 when the
 * provider has no logs.
 */
export function registerLogsRoutes(
  app: FastifyInstance,
  { provider, config }: { provider: Provider; config: GatewayConfig },
): void {
  app.withTypeProvider<TypeBoxTypeProvider>().get(
    '/system/logs',
    {
      schema: {
        querystring: LogsQuerySchema,
        summary: 'Function logs: application/x-ndjson, one LogMessage a line',
        statuses: {
          200: 'the lines; with follow, streamed until the caller leaves',
          400: 'bad tail, follow or since',
          404: 'no such function',
          501: 'no logs in this provider',
        },
      },
    },
    async (request, reply) => {
      if (!provider.logs) throw new NotImplementedError('this provider has no logs');
      const query = request.query;
      const { name, namespace } = splitFunctionName(
        query.name,
        query.namespace || config.functionNamespace,
      );
      const logRequest: LogRequest = { name, namespace, follow: parseFollow(query.follow) };
      if (query.instance) logRequest.instance = query.instance;
      const tail =
        query.tail === undefined || query.tail === '' ? undefined : parseTail(query.tail);
      if (tail !== undefined) logRequest.tail = tail;
      if (query.since !== undefined && query.since !== '')
        logRequest.since = parseSince(query.since);
      if (!(await provider.get(name, namespace)))
        throw new NotFoundError(`function not found: ${joinFunctionName(name, namespace)}`);

      const aborter = new AbortController();
      const { signal } = aborter;
      const lines = provider.logs(logRequest, signal);
      reply.hijack();
      const res = reply.raw;
      res.once('close', () => aborter.abort());
      res.writeHead(200, {
        'Content-Type': 'application/x-ndjson',
        'Cache-Control': 'no-cache',
        'X-Content-Type-Options': 'nosniff',
      });
      // A follower sees the status at once, not with the first line.
      res.flushHeaders();
      try {
        for await (const message of lines) {
          if (signal.aborted) break;
          if (!res.write(`${JSON.stringify(message)}\n`)) await once(res, 'drain', { signal });
        }
        res.end();
      } catch (error) {
        if (!signal.aborted) request.log.error(error, 'log stream failed');
        res.destroy();
      }
    },
  );
}

/**
 * `tail` as OpenFaaS reads it (Go's Atoi): an integer. Negative means every line (faas-cli sends
 * -1 by default), 0 none of the past (with `follow`: only new lines), N the last N.
 */
function parseTail(text: string): number | undefined {
  if (!/^[-+]?\d+$/.test(text)) {
    throw new ValidationError(`invalid querystring: tail must be an integer, not "${text}"`);
  }
  const tail = Number(text);
  return tail < 0 ? undefined : tail;
}

function parseFollow(text: string | undefined): boolean {
  const value = goBools[text ?? ''];
  if (value === undefined) {
    throw new ValidationError(`invalid querystring: follow must be true or false, not "${text}"`);
  }
  return value;
}

function parseSince(text: string): Date {
  const at = new Date(text);
  if (!rfc3339.test(text) || Number.isNaN(at.getTime())) {
    throw new ValidationError(`invalid querystring: since must be an RFC 3339 time, not "${text}"`);
  }
  return at;
}
