import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  ConflictError,
  NotFoundError,
  NotImplementedError,
  ValidationError,
} from '../core/errors.js';
import {
  canonicalFunctionName,
  joinFunctionName,
  splitFunctionName,
} from '../core/function-name.js';
import { headerValue } from '../core/http-headers.js';
import { requestProblems } from '../core/http-request-check.js';
import { functionTimeoutMs } from '../core/function-rules.js';
import { newCallId } from '../core/call-id.js';
import { OpenFaasHeader, startTimeNow } from '../core/openfaas-names.js';
import type { Provider } from '../core/provider.js';
import {
  deadLetterPageDefault,
  deadLetterPageMax,
  type AttemptRecord,
  type DeadLetterFilter,
  type DeadLetterQuery,
  type Queue,
} from '../core/queue.js';
import type { QueueRequest } from '../core/queue-types.js';
import { callUrlParts } from './call-url.js';
import type { GatewayConfig } from './config.js';

interface AsyncDeps {
  provider: Provider;
  queue: Queue | undefined;
  config: GatewayConfig;
}

/** These methods queue a call; DELETE with a call id cancels one (the old route). */
const queuedMethods = ['GET', 'POST', 'PUT', 'PATCH'] as const;

/** The body of redrive and purge: which dead letters. */
interface DeadLetterSelection {
  callId?: string;
  function?: string;
  all?: boolean;
}

/** A dead letter made elsewhere: the call as it was made, and how it went. */
interface NewDeadLetter {
  function: string;
  method?: string;
  path?: string;
  query?: string;
  headers?: Record<string, string | string[]>;
  /** Base64. */
  body?: string;
  attempts: AttemptRecord[];
  lastStatus?: number;
  lastBodyExcerpt?: string;
  reason: string;
}

const newDeadLetterSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['function', 'attempts', 'reason'],
  properties: {
    // A function's name as calls carry it: `name` or `name.namespace`, DNS-1123 labels. A
    // letter names no other key (not `__proto__`: the queues tally letters by function).
    function: {
      type: 'string',
      maxLength: 127,
      pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$',
    },
    method: { type: 'string', enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] },
    path: { type: 'string', pattern: '^/' },
    query: { type: 'string' },
    headers: {
      type: 'object',
      additionalProperties: {
        anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
      },
    },
    body: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' },
    attempts: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['attempt', 'startedAt', 'durationMs'],
        properties: {
          attempt: { type: 'integer', minimum: 1 },
          startedAt: { type: 'string', format: 'date-time' },
          durationMs: { type: 'number', minimum: 0 },
          status: { type: 'integer', minimum: 100, maximum: 599 },
          error: { type: 'string' },
        },
      },
    },
    lastStatus: { type: 'integer', minimum: 100, maximum: 599 },
    lastBodyExcerpt: { type: 'string' },
    reason: { type: 'string', minLength: 1 },
  },
} as const;

const selectionSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    callId: { type: 'string', minLength: 1 },
    function: { type: 'string', minLength: 1 },
    all: { type: 'boolean' },
  },
} as const;

/**
 * The async path's routes. `/async-function/:name[/*]` queues a call (GET, POST, PUT or PATCH:
 * method, path, query, headers and body are kept, where OpenFaaS's worker turns every call into a
 * POST) and answers 202 with its X-Call-Id once the queue has it durably; 404 for an unknown
 * function, 413 past max_async_body_bytes, 400 for an X-Callback-Url that is not an http(s) URL.
 * An `Idempotency-Key` makes a resubmission answer the first call's id (422 when the key comes
 * back with another request to the function). `DELETE /system/calls/:callId` cancels a call
 * still waiting (`DELETE /async-function/:callId` too, an undocumented alias, as authenticated);
 * `GET /system/calls/:callId` tells where a call is; `/system/dead-letters` pages, shows,
 * redrives and purges what was given up. Without a queue, every one of them answers 501.
 */
export function registerAsyncRoutes(app: FastifyInstance, { provider, queue, config }: AsyncDeps) {
  const need = (): Queue => {
    if (!queue) throw new NotImplementedError('this gateway has no queue: async calls are off');
    return queue;
  };
  /** What any route of the queue may answer besides its own statuses. */
  const queueStatuses = {
    501: 'this gateway has no queue',
    503: 'the queue cannot be reached',
  } as const;
  const cancelSchema = {
    summary: 'Cancel a queued call',
    statuses: { 202: 'cancelled', 404: 'no such call', 409: 'running or over', ...queueStatuses },
  };
  const cancel = async (
    request: FastifyRequest<{ Params: { callId: string } }>,
    reply: FastifyReply,
  ) => {
    const cancelled = await need().cancel(request.params.callId);
    if (!cancelled) {
      throw new ConflictError(
        `call ${request.params.callId} is running or over: it cannot be cancelled`,
      );
    }
    return reply.code(202).send();
  };

  app.register((scope, _options, done) => {
    // The body is kept whole, as bytes, whatever its type: it is replayed as it came.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, parsed) =>
      parsed(null, body),
    );
    const submit = async (
      request: FastifyRequest<{ Params: { name: string; '*'?: string } }>,
      reply: FastifyReply,
    ) => {
      const queued = need();
      const { name, namespace } = splitFunctionName(request.params.name, config.functionNamespace);
      const status = await provider.get(name, namespace);
      if (!status) {
        throw new NotFoundError(`function not found: ${joinFunctionName(name, namespace)}`);
      }
      const callbackUrl = callbackUrlOf(request.headers['x-callback-url']);
      const sentCallId = request.headers['x-call-id'] as string | undefined;
      const callId = sentCallId ?? newCallId();
      const header = groupHeaders(request.raw.rawHeaders);
      header[OpenFaasHeader.CallId] = [callId];
      header[OpenFaasHeader.StartTime] = [startTimeNow()];
      // Path and query raw, as sent: the worker replays them byte for byte.
      const parts = callUrlParts(request.raw.url ?? '');
      const timeoutMs = functionTimeoutMs(status.envVars);
      const message: QueueRequest = {
        Header: header,
        Host: request.headers.host ?? '',
        Body: Buffer.isBuffer(request.body) ? request.body.toString('base64') : '',
        Method: request.method,
        Path: parts.path,
        QueryString: parts.query ?? '',
        Function: joinFunctionName(
          name,
          namespace === config.functionNamespace ? undefined : namespace,
        ),
      };
      // Set one by one, not spread in: spreads of optional parts cost every call V8's slow path.
      if (timeoutMs) message.FunctionTimeoutMs = timeoutMs;
      if (status.annotations) message.Annotations = status.annotations;
      if (status.labels) message.Labels = status.labels;
      if (callbackUrl) message.CallbackUrl = callbackUrl;
      refuseUnsendable(message);
      const key = request.headers['idempotency-key'];
      const enqueued = await queued.enqueue(
        message,
        typeof key === 'string' && key !== ''
          ? { freshCallId: sentCallId === undefined, idempotencyKey: key }
          : { freshCallId: sentCallId === undefined },
      );
      return reply.code(202).header(OpenFaasHeader.CallId, enqueued.callId).send();
    };
    const schema = {
      summary: 'Queue a call to a function (GET, POST, PUT, PATCH); 202 once stored',
      statuses: {
        202: 'queued: X-Call-Id names the call',
        400: 'a bad X-Callback-Url, or a path, query or header that cannot be replayed',
        404: 'no such function',
        413: 'body over max_async_body_bytes',
        422: 'Idempotency-Key already used for another request to this function',
        429: 'the queue holds max_queued_calls calls: nothing queued; Retry-After',
        ...queueStatuses,
        507: 'the queue cannot store the call (disk full)',
      },
    };
    // No automatic HEAD route: a HEAD must not queue a call.
    const options = { schema, bodyLimit: config.maxAsyncBodyBytes, exposeHeadRoute: false };
    scope.route({
      method: [...queuedMethods],
      url: '/async-function/:name',
      ...options,
      handler: submit,
    });
    scope.route({
      method: [...queuedMethods],
      url: '/async-function/:name/*',
      ...options,
      handler: submit,
    });
    // The old cancel route, kept for clients of earlier releases: behind basic auth as the new one
    // (call ids are not secrets: they are in webhook answers and callbacks), out of the document.
    scope.delete<{ Params: { callId: string } }>(
      '/async-function/:callId',
      { schema: { ...cancelSchema, hide: true }, config: { systemAuth: true } },
      cancel,
    );
    done();
  });

  app.delete<{ Params: { callId: string } }>(
    '/system/calls/:callId',
    { schema: cancelSchema },
    cancel,
  );

  app.get<{ Params: { callId: string } }>(
    '/system/calls/:callId',
    {
      schema: {
        summary: 'Where an async call is: state, attempts, last status',
        statuses: { 200: 'the call', 404: 'no such call', ...queueStatuses },
      },
    },
    async (request) => {
      const record = await need().status(request.params.callId);
      if (!record) throw new NotFoundError(`no call ${request.params.callId}`);
      return record;
    },
  );

  app.get<{ Querystring: { function?: string; limit?: string; cursor?: string } }>(
    '/system/dead-letters',
    {
      schema: {
        summary:
          'Dead letters, oldest first, a page at a time ({items, next}; pass next as cursor): ' +
          'records and request summaries, no bodies',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            function: { type: 'string' },
            limit: { type: 'string', pattern: '^[0-9]{1,9}$' },
            cursor: { type: 'string', maxLength: 1024 },
          },
        },
        statuses: { 200: '{items, next}', 400: 'a bad limit or cursor', ...queueStatuses },
      },
    },
    async (request) => need().deadLetters(pageOf(request.query, config.functionNamespace)),
  );

  app.get<{ Params: { callId: string } }>(
    '/system/dead-letters/:callId',
    {
      schema: {
        summary: 'One dead letter, whole: its request with headers and body (base64)',
        statuses: { 200: 'the letter', 404: 'no such letter', ...queueStatuses },
      },
    },
    async (request) => {
      const letter = await need().deadLetter(request.params.callId);
      if (!letter) throw new NotFoundError(`no dead letter ${request.params.callId}`);
      return letter;
    },
  );

  app.get<{ Params: { callId: string } }>(
    '/system/dead-letters/:callId/body',
    {
      schema: {
        summary: 'A dead letter’s request body, as bytes, with its Content-Type',
        statuses: { 200: 'the body', 404: 'no such letter', ...queueStatuses },
      },
    },
    async (request, reply) => {
      const letter = await need().deadLetter(request.params.callId);
      if (!letter) throw new NotFoundError(`no dead letter ${request.params.callId}`);
      const type = headerValue(letter.request.Header, 'content-type');
      return reply
        .type(type || 'application/octet-stream')
        .send(Buffer.from(letter.request.Body, 'base64'));
    },
  );

  app.post<{ Body: NewDeadLetter }>(
    '/system/dead-letters',
    {
      schema: {
        summary: 'Keep a call that failed elsewhere (a connector’s) as a dead letter',
        body: newDeadLetterSchema,
        statuses: {
          201: 'stored: callId names it',
          400: 'a path, query or header that cannot be replayed',
          409: 'its X-Call-Id is taken',
          ...queueStatuses,
          507: 'the queue cannot store the letter (disk full)',
        },
      },
    },
    async (request, reply) => {
      const letter = request.body;
      // The call's own X-Call-Id (sent in any case) names the letter, under one header.
      const callId = headerValue(letter.headers, OpenFaasHeader.CallId) || newCallId();
      // No prototype: a header may be named `__proto__`.
      const header = Object.create(null) as Record<string, string[]>;
      header[OpenFaasHeader.CallId] = [callId];
      for (const [name, value] of Object.entries(letter.headers ?? {})) {
        if (name.toLowerCase() === 'x-call-id') continue;
        header[name] = Array.isArray(value) ? value : [value];
      }
      const call: QueueRequest = {
        Header: header,
        Host: request.headers.host ?? '',
        Body: letter.body ?? '',
        Method: letter.method ?? 'POST',
        Path: letter.path && letter.path !== '/' ? letter.path : '',
        QueryString: letter.query ?? '',
        Function: canonicalFunctionName(letter.function, config.functionNamespace),
      };
      // A letter a redrive could never send is refused now, not kept to fail forever.
      refuseUnsendable(call);
      const stored = await need().bury({
        request: call,
        attempts: letter.attempts,
        lastStatus: letter.lastStatus,
        lastBodyExcerpt: letter.lastBodyExcerpt,
        reason: letter.reason,
      });
      return reply.code(201).send({ callId: stored });
    },
  );

  app.post<{ Body: DeadLetterSelection }>(
    '/system/dead-letters/redrive',
    {
      schema: {
        summary: 'Queue dead letters again: one (callId), a function’s, or all (all: true)',
        body: selectionSchema,
        statuses: {
          202: 'queued again: callIds',
          400: 'no selection',
          429: 'the queue holds max_queued_calls calls; Retry-After',
          ...queueStatuses,
          507: 'the queue cannot store the calls (disk full)',
        },
      },
    },
    async (request, reply) => {
      const callIds = await need().redrive(selectionOf(request.body, config.functionNamespace));
      return reply.code(202).send({ callIds });
    },
  );

  app.delete<{ Body: DeadLetterSelection }>(
    '/system/dead-letters',
    {
      schema: {
        summary: 'Delete dead letters: one (callId), a function’s, or all (all: true)',
        body: selectionSchema,
        statuses: { 200: 'purged: how many', 400: 'no selection', ...queueStatuses },
      },
    },
    async (request) => ({
      purged: await need().purge(selectionOf(request.body, config.functionNamespace)),
    }),
  );
}

/** An X-Callback-Url must be an absolute http(s) URL: OpenFaaS answers 400 otherwise too. */
function callbackUrlOf(value: string | string[] | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  const text = Array.isArray(value) ? value[0] : value;
  if (text && URL.canParse(text)) {
    const url = new URL(text);
    if (url.protocol === 'http:' || url.protocol === 'https:') return url.href;
  }
  throw new ValidationError(`X-Callback-Url: "${String(text)}" is not an http or https URL`);
}

/**
 * A call the worker could never send (a path, query or header no HTTP request can carry) is
 * refused at the door, naming each problem, rather than queued to fail forever.
 */
function refuseUnsendable(message: QueueRequest): void {
  const problems = requestProblems({
    method: message.Method,
    path: message.Path,
    query: message.QueryString,
    headers: message.Header,
  });
  if (problems.length > 0) throw new ValidationError(`cannot be replayed: ${problems.join('; ')}`);
}

/** Raw headers as Go's http.Header: names as sent, values of a repeated name together. */
function groupHeaders(raw: readonly string[]): Record<string, string[]> {
  // No prototype: a header may be named `constructor` or `__proto__`.
  const out = Object.create(null) as Record<string, string[]>;
  const names = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (lower === 'x-call-id' || lower === 'x-start-time') continue; // set by the gateway
    const key = names.get(lower) ?? name;
    names.set(lower, key);
    (out[key] ??= []).push(raw[i + 1] as string);
  }
  return out;
}

function filterOf(
  query: { function?: string; callId?: string },
  defaultNamespace: string,
): DeadLetterFilter {
  const filter: DeadLetterFilter = {};
  if (query.function) filter.function = canonicalFunctionName(query.function, defaultNamespace);
  if (query.callId) filter.callId = query.callId;
  return filter;
}

/** A page's query: `limit` between 1 and deadLetterPageMax (default deadLetterPageDefault). */
function pageOf(
  query: { function?: string; limit?: string; cursor?: string },
  defaultNamespace: string,
): DeadLetterQuery {
  const limit = query.limit === undefined ? deadLetterPageDefault : Number(query.limit);
  if (limit < 1 || limit > deadLetterPageMax) {
    throw new ValidationError(`limit: between 1 and ${deadLetterPageMax}, not ${limit}`);
  }
  const page: DeadLetterQuery = { limit };
  if (query.function) page.function = canonicalFunctionName(query.function, defaultNamespace);
  if (query.cursor) page.cursor = query.cursor;
  return page;
}

/** Redrive and purge act on everything only when asked in so many words. */
function selectionOf(
  body: DeadLetterSelection | undefined,
  defaultNamespace: string,
): DeadLetterFilter {
  const filter = filterOf(body ?? {}, defaultNamespace);
  if (!body?.all && filter.callId === undefined && filter.function === undefined) {
    throw new ValidationError('say which dead letters: callId, function, or all: true');
  }
  return filter;
}
