// fnbus node template: the runner. A stdlib HTTP server (no dependencies, so nothing to install
// for the template itself) that the watchdog starts in `http` mode and proxies every call to. It
// loads the handler once, at start, and calls it per request as OpenFaaS's node22 template does:
// `handler(event, context, callback)`. See ../README.md for the contract.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Byte sizes as body-parser writes them: `100kb`, `1mb`, `512b`, or a bare number of bytes. */
export function parseSize(value, fallback) {
  if (value === undefined || value === '') return fallback;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(value);
  if (!match) throw new Error(`not a size: ${JSON.stringify(value)} (use e.g. 100kb, 1mb)`);
  const units = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
  return Math.floor(Number(match[1]) * units[(match[2] ?? 'b').toLowerCase()]);
}

/**
 * The handler's file: `handler_path` (a folder holding handler.js/.mjs/.cjs, or the file itself),
 * else `function/` next to this file, where OpenFaaS-style builds copy the handler.
 */
function handlerFile(env) {
  const base = env.handler_path ? resolve(env.handler_path) : join(here, 'function');
  if (existsSync(base) && statSync(base).isFile()) return base;
  for (const name of ['handler.js', 'handler.mjs', 'handler.cjs']) {
    const file = join(base, name);
    if (existsSync(file)) return file;
  }
  throw new Error(`no handler.js, handler.mjs or handler.cjs in ${base}`);
}

/** import() loads both kinds: an ES module's default export, or a CommonJS module.exports. */
async function loadHandler(file) {
  const mod = await import(pathToFileURL(file).href);
  const candidates = [mod.default, mod.handler, mod.handle, mod.default?.handler];
  const handler = candidates.find((candidate) => typeof candidate === 'function');
  if (!handler) {
    throw new Error(`${file} exports no function (module.exports = async (event, context) => ...)`);
  }
  return handler;
}

/**
 * The runner's port: PORT, chosen by whoever runs it; else the port of the watchdog's
 * upstream_url (the watchdog passes its environment on); else 3000, OpenFaaS's.
 */
function listenPort(env) {
  if (env.PORT) return Number(env.PORT);
  const upstream = env.http_upstream_url || env.upstream_url;
  if (upstream) {
    try {
      const port = new URL(upstream).port;
      if (port) return Number(port);
    } catch {
      // Not a URL: the watchdog reports that itself.
    }
  }
  return 3000;
}

const isJson = (type) => /^application\/([\w.+-]*\+)?json\b/i.test(type);

/** name → value, or an array of values for a repeated name. */
function toObject(params) {
  const out = {};
  for (const [key, value] of params) {
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[key] = [prev, value];
  }
  return out;
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * The whole request body, or an HttpError(413) once it passes `limit` bytes. A body too large is
 * still read to its end (and dropped): answering before it is read would close the connection
 * under a caller still sending it (the watchdog), which then sees a reset rather than the 413.
 */
function readBody(req, limit) {
  return new Promise((resolveBody, reject) => {
    const chunks = [];
    let size = 0;
    let over = Number(req.headers['content-length']) > limit;
    req.on('data', (chunk) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => {
      if (over) reject(new HttpError(413, `request body larger than ${limit} bytes`));
      else resolveBody(Buffer.concat(chunks));
    });
    req.once('error', reject);
  });
}

/** OpenFaaS's FunctionEvent. */
async function toEvent(req, limits) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const type = String(req.headers['content-type'] ?? '');
  let body;
  if (limits.raw) {
    body = await readBody(req, limits.rawBytes);
  } else if (isJson(type)) {
    const text = (await readBody(req, limits.jsonBytes)).toString('utf8');
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch (error) {
      throw new HttpError(400, `invalid JSON body: ${error.message}`);
    }
  } else {
    const text = (await readBody(req, limits.rawBytes)).toString('utf8');
    body = /^application\/x-www-form-urlencoded\b/i.test(type)
      ? toObject(new URLSearchParams(text))
      : text;
  }
  return {
    body,
    headers: req.headers,
    method: req.method,
    query: toObject(url.searchParams),
    path: url.pathname,
  };
}

/**
 * Where the function's secrets are, one file per secret: `FNBUS_SECRETS_PATH` where the host
 * sets it (the process provider: a folder of the function's own), else OpenFaaS's mount point.
 */
export function secretsDir(env = process.env) {
  return env.FNBUS_SECRETS_PATH || '/var/openfaas/secrets';
}

/** A secret's value as a string (UTF-8, as stored: a trailing newline is kept). */
export function readSecret(name, env = process.env) {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new Error(`not a secret name: ${JSON.stringify(name)}`);
  }
  try {
    return readFileSync(join(secretsDir(env), name), 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') {
      throw new Error(`no secret "${name}": list it in the function's secrets`);
    }
    throw error;
  }
}

/** OpenFaaS's FunctionContext: setters chain, calling them without an argument reads. */
class FunctionContext {
  constructor(callback) {
    this.statusCode = 200;
    this.headerValues = {};
    this.cbCalled = 0;
    this.cb = callback;
  }

  status(statusCode) {
    if (!statusCode) return this.statusCode;
    this.statusCode = Number(statusCode);
    return this;
  }

  headers(values) {
    if (!values) return this.headerValues;
    this.headerValues = values;
    return this;
  }

  succeed(value) {
    this.cbCalled++;
    this.cb(undefined, value);
  }

  fail(error) {
    this.cbCalled++;
    this.cb(error ?? new Error('failed'));
  }

  /** The value of one of the function's secrets (readSecret). */
  secret(name) {
    return readSecret(name);
  }
}

function errorText(error) {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

/** Writes a result as OpenFaaS does: objects and arrays as JSON, strings and Buffers as they are. */
function send(res, status, headers, value, draining) {
  let body;
  let type;
  if (value === undefined || value === null) {
    body = Buffer.alloc(0);
  } else if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    body = Buffer.from(value);
    type = 'application/octet-stream';
  } else if (typeof value === 'object') {
    body = Buffer.from(JSON.stringify(value));
    type = 'application/json';
  } else {
    body = Buffer.from(String(value));
    type = 'text/plain; charset=utf-8';
  }
  for (const [name, headerValue] of Object.entries(headers ?? {})) {
    if (headerValue !== undefined && headerValue !== null) res.setHeader(name, headerValue);
  }
  if (type && !res.hasHeader('content-type') && body.length > 0)
    res.setHeader('Content-Type', type);
  if (draining) res.setHeader('Connection', 'close');
  res.statusCode = status;
  if (status === 204 || status === 304) {
    res.end();
    return;
  }
  res.setHeader('Content-Length', body.length);
  res.end(body);
}

export async function main(env = process.env) {
  const limits = {
    raw: env.RAW_BODY === 'true',
    rawBytes: parseSize(env.MAX_RAW_SIZE, 100 * 1024),
    jsonBytes: parseSize(env.MAX_JSON_SIZE, 100 * 1024),
  };
  const file = handlerFile(env);
  const handler = await loadHandler(file);
  let draining = false;

  const server = createServer((req, res) => {
    let answered = false;
    const fail = (status, error) => {
      if (answered || res.headersSent) return;
      answered = true;
      // Headers a handler set are dropped: they described the answer it did not give.
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      send(res, status, {}, errorText(error), draining);
    };
    const context = new FunctionContext((error, value) => {
      if (answered) return;
      if (error !== undefined && error !== null) {
        console.error(error);
        // As OpenFaaS's fail(), but a success status never carries an error.
        const status = context.status() < 400 ? 500 : context.status();
        fail(status, error);
        return;
      }
      try {
        answered = true;
        send(res, context.status(), context.headers(), value, draining);
      } catch (sendError) {
        // e.g. an invalid header name or status code from the handler.
        answered = false;
        console.error(sendError);
        fail(500, sendError);
      }
    });
    toEvent(req, limits).then(
      (event) =>
        Promise.resolve()
          // Inside then(): a handler that throws synchronously rejects like an async one.
          .then(() => handler(event, context, (error, value) => context.cb(error, value)))
          .then(
            (value) => {
              if (!context.cbCalled) context.succeed(value);
            },
            (error) => {
              context.cbCalled++;
              context.cb(error ?? new Error('handler rejected'));
            },
          ),
      (error) => {
        if (!(error instanceof HttpError)) console.error(error);
        fail(error instanceof HttpError ? error.status : 400, error);
      },
    );
  });

  const port = listenPort(env);
  const host = env.HOST || '127.0.0.1';
  await new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  console.log(
    `fnbus node template: ${basename(file)} listening on http://${host}:${server.address().port}`,
  );

  const stop = () => {
    if (draining) return;
    draining = true;
    // Calls in flight finish (their answers close their connections); idle ones close now.
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return server;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
