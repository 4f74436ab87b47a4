// fnbus alexa template: the runner. A stdlib HTTP server, started by the watchdog in `http` mode,
// that takes Alexa's skill requests: verifies each as Amazon requires (verify.js), parses it, and
// calls the handler with the skill request and a `reply()` builder (reply.js). See
// ../README.md for the contract.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Reply } from './reply.js';
import { createVerifier, VerificationError } from './verify.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Alexa's requests are small; anything larger is not one. */
const maxBodyBytes = 256 * 1024;

function handlerFile(env) {
  const base = env.handler_path ? resolve(env.handler_path) : join(here, 'function');
  if (existsSync(base) && statSync(base).isFile()) return base;
  for (const name of ['handler.js', 'handler.mjs', 'handler.cjs']) {
    const file = join(base, name);
    if (existsSync(file)) return file;
  }
  throw new Error(`no handler.js, handler.mjs or handler.cjs in ${base}`);
}

/**
 * A secret's value (as the node template's context.secret): `$FNBUS_SECRETS_PATH/<name>` where
 * the host sets it, else `/var/openfaas/secrets/<name>`. Its own copy: each template is copied
 * into an image alone.
 */
export function readSecret(name, env = process.env) {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new Error(`not a secret name: ${JSON.stringify(name)}`);
  }
  try {
    return readFileSync(join(env.FNBUS_SECRETS_PATH || '/var/openfaas/secrets', name), 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') {
      throw new Error(`no secret "${name}": list it in the function's secrets`);
    }
    throw error;
  }
}

async function loadHandler(file) {
  const mod = await import(pathToFileURL(file).href);
  const handler = [mod.default, mod.handler, mod.handle].find((f) => typeof f === 'function');
  if (!handler)
    throw new Error(`${file} exports no function (module.exports = async (skill, context) => ...)`);
  return handler;
}

/**
 * The runner's port, as the node template's: PORT, else the port of the watchdog's upstream_url,
 * else 3000.
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

/** The skill request as the handler sees it. */
export function toSkillRequest(envelope) {
  const request = envelope.request ?? {};
  const slots = {};
  for (const [name, slot] of Object.entries(request.intent?.slots ?? {})) slots[name] = slot.value;
  return {
    type: request.type,
    requestId: request.requestId,
    timestamp: request.timestamp,
    locale: request.locale,
    intent: request.intent ? { name: request.intent.name, slots } : undefined,
    reason: request.reason,
    session: {
      id: envelope.session?.sessionId,
      new: envelope.session?.new === true,
      attributes: envelope.session?.attributes ?? {},
    },
    applicationId:
      envelope.context?.System?.application?.applicationId ??
      envelope.session?.application?.applicationId,
    userId: envelope.context?.System?.user?.userId ?? envelope.session?.user?.userId,
    raw: envelope,
  };
}

function readBody(req) {
  return new Promise((resolveBody, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= maxBodyBytes) chunks.push(chunk);
    });
    req.once('end', () =>
      size > maxBodyBytes
        ? reject(new VerificationError(`the body is over ${maxBodyBytes} bytes`))
        : resolveBody(Buffer.concat(chunks)),
    );
    req.once('error', reject);
  });
}

function answer(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

/**
 * The skill endpoint. `verify(headers, body)` rejects what Amazon did not send (default: the
 * real check; null, as `ALEXA_VERIFY=false` asks, turns it off: for local testing only).
 * `skillId`, when set, must be the request's application id.
 */
export function createSkillServer({ handler, verify = createVerifier(), skillId, log = console }) {
  return createServer((req, res) => {
    (async () => {
      if (req.method !== 'POST') {
        answer(res, 405, { error: 'skill requests are POSTed' });
        return;
      }
      let envelope;
      try {
        const body = await readBody(req);
        envelope = verify ? await verify(req.headers, body) : JSON.parse(body.toString('utf8'));
      } catch (error) {
        const why =
          error instanceof VerificationError
            ? error.message
            : `not a skill request: ${error.message}`;
        log.error(`alexa: rejected: ${why}`);
        answer(res, 400, { error: why });
        return;
      }
      const skill = toSkillRequest(envelope);
      if (skillId && skill.applicationId !== skillId) {
        log.error(`alexa: rejected: application ${skill.applicationId} is not ${skillId}`);
        answer(res, 400, { error: 'the request is for another skill' });
        return;
      }
      const result = await handler(skill, { reply: () => new Reply(), secret: readSecret });
      const out = result instanceof Reply ? result.toJSON() : (result ?? new Reply().toJSON());
      answer(res, 200, out);
    })().catch((error) => {
      log.error(`alexa: the handler failed: ${error?.stack ?? error}`);
      if (!res.headersSent) answer(res, 500, { error: 'the skill failed' });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const env = process.env;
  const handler = await loadHandler(handlerFile(env));
  const server = createSkillServer({
    handler,
    verify: env.ALEXA_VERIFY === 'false' ? null : createVerifier(),
    skillId: env.ALEXA_SKILL_ID || undefined,
  });
  server.listen(listenPort(env), env.HOST || '127.0.0.1');
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
