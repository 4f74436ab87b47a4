import type { IncomingMessage, ServerResponse } from 'node:http';
import { FnbusError, httpAnswer } from '../../core/errors.js';
import { headersToSend, notSentOn } from '../../core/http-headers.js';
import { parseDurationMs } from '../../core/duration.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { OpenFaasHeader } from '../../core/openfaas-names.js';
import type { SourceEvent } from '../../core/source.js';
import { DeliveryError, type InvokerResponse } from '../sdk/controller.js';
import type { TopicMap, TopicTarget } from '../sdk/topic-map.js';
import type { WebhookConfig } from './config.js';
import { ReplayGuard } from './replay-guard.js';
import { signatureSchemes, verifySignature, type SignatureScheme } from './signatures.js';

/** Annotations by which a topic's functions ask for signed webhooks. */
export const WebhookAnnotation = {
  /** `github`, `stripe`, `slack`, `hmac`, or `none`. */
  Verify: 'fnbus.webhook.verify',
  /** The name of the secret (in the secret store) holding the signing key. */
  Secret: 'fnbus.webhook.secret',
  /** `hmac`: the header carrying the signature; default `X-Signature`. */
  SignatureHeader: 'fnbus.webhook.signature_header',
  /** Stripe and Slack: how far a signed timestamp may be from now; default 5m. */
  Tolerance: 'fnbus.webhook.tolerance',
} as const;

/** The `X-Connector` of webhook deliveries. */
export const WebhookConnectorName = 'webhook-connector';
/** Where the handler is mounted: `POST /webhook/<topic>`. */
export const webhookPrefix = '/webhook/';

interface Verification {
  scheme: SignatureScheme;
  secret: string;
  header: string;
  toleranceSeconds: number;
}

export interface WebhookHandlerOptions {
  /** The topic map; undefined until the first one is built (webhooks then answer 503). */
  topicMap: () => TopicMap | undefined;
  /** The connector's emit, once its source runs; undefined before (webhooks then answer 503). */
  emit: () => ((event: SourceEvent) => Promise<InvokerResponse[]>) | undefined;
  config: WebhookConfig;
  /** A secret's value by name; undefined when there is none. */
  secret: (name: string) => Promise<string | undefined>;
  logger?: Logger;
}

/** A webhook refused, with the status that says why (401 signature, 404 topic, 413 body, ...). */
class WebhookRefusal extends FnbusError {
  constructor(status: number, message: string) {
    super('webhook_refused', status, message);
  }
}

/**
 * `POST /webhook/<topic>`: the body goes to every function whose `topic` annotation names
 * `<topic>`, with the request's headers. When the topic's functions ask for a signature (or
 * `webhook_verify` does), it is checked first (a bad or missing one is a 401 and nothing is
 * invoked), and a delivery id seen within the replay window is answered 200 and not invoked
 * again. A topic with one function invoked synchronously answers with that function's answer;
 * otherwise 202 once every function has its call queued (async) or answered (sync), with the
 * calls in the body (`{"calls":[{"function","status","callId"}]}`) and `X-Call-Id` when there is
 * one. A delivery that fails (after the controller's retries; it is then dead-lettered) is a
 * 502, so that the sender tries again.
 */
export function createWebhookHandler(options: WebhookHandlerOptions) {
  const { topicMap, emit, config, secret } = options;
  const logger = options.logger ?? silentLogger;
  const replays = new ReplayGuard(config.replayWindowMs);

  const verificationOf = async (topic: string, targets: TopicTarget[]) => {
    const configured = config.verify.get(topic);
    const asked = new Map<string, Omit<Verification, 'secret'> & { secretName: string }>();
    if (configured) {
      asked.set('config', {
        scheme: configured.scheme,
        secretName: configured.secret,
        header: 'X-Signature',
        toleranceSeconds: 300,
      });
    } else {
      for (const target of targets) {
        const a = target.annotations;
        const scheme = a[WebhookAnnotation.Verify]?.trim();
        if (!scheme || scheme === 'none') continue;
        if (!(signatureSchemes as readonly string[]).includes(scheme)) {
          throw new WebhookRefusal(
            500,
            `${target.function}: ${WebhookAnnotation.Verify} "${scheme}" is not one of ${signatureSchemes.join(', ')}, none`,
          );
        }
        const secretName = a[WebhookAnnotation.Secret]?.trim();
        if (!secretName) {
          throw new WebhookRefusal(
            500,
            `${target.function}: ${WebhookAnnotation.Secret} is missing`,
          );
        }
        const tolerance = a[WebhookAnnotation.Tolerance]?.trim();
        const toleranceMs = tolerance ? parseDurationMs(tolerance) : 300_000;
        if (toleranceMs === undefined) {
          throw new WebhookRefusal(
            500,
            `${target.function}: ${WebhookAnnotation.Tolerance} "${tolerance}" is not a duration`,
          );
        }
        const wanted = {
          scheme: scheme as SignatureScheme,
          secretName,
          header: a[WebhookAnnotation.SignatureHeader]?.trim() || 'X-Signature',
          toleranceSeconds: toleranceMs / 1000,
        };
        asked.set(JSON.stringify(wanted), wanted);
      }
    }
    if (asked.size > 1) {
      throw new WebhookRefusal(
        500,
        `the functions of topic "${topic}" ask for different webhook signatures`,
      );
    }
    const [wanted] = asked.values();
    if (!wanted) return undefined;
    const value = await secret(wanted.secretName);
    if (value === undefined) {
      throw new WebhookRefusal(
        500,
        `secret "${wanted.secretName}" for topic "${topic}" does not exist`,
      );
    }
    return { ...wanted, secret: value } satisfies Verification;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?', 1)[0] ?? '';
    let topic: string;
    try {
      topic = decodeURIComponent(path.slice(webhookPrefix.length));
    } catch {
      throw new WebhookRefusal(400, `"${path}" is not a valid path`);
    }
    if (!path.startsWith(webhookPrefix) || topic === '') {
      throw new WebhookRefusal(404, 'POST /webhook/<topic>');
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      throw new WebhookRefusal(405, 'webhooks are POSTed');
    }
    const map = topicMap();
    const deliver = emit();
    if (!map || !deliver) {
      // A 404 now would be final to senders (GitHub, Stripe do not retry it): ask for a retry.
      res.setHeader('Retry-After', '1');
      throw new WebhookRefusal(503, 'the topic map is not built yet: try again shortly');
    }
    const targets = map.match(topic);
    if (targets.length === 0)
      throw new WebhookRefusal(404, `no function takes the topic "${topic}"`);
    const verification = await verificationOf(topic, targets);
    const body = await readBody(req, config.maxBodyBytes);

    let deliveryId: string | undefined;
    if (verification) {
      const verdict = verifySignature(
        { ...verification, nowSeconds: Date.now() / 1000 },
        req.headers,
        body,
      );
      if (!verdict.ok) throw new WebhookRefusal(401, `signature refused: ${verdict.reason}`);
      deliveryId = verdict.deliveryId && `${topic}\n${verdict.deliveryId}`;
      if (deliveryId && !replays.firstTime(deliveryId)) {
        res
          .writeHead(200, { 'Content-Type': 'text/plain' })
          .end(`delivery ${verdict.deliveryId} was taken already\n`);
        return;
      }
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || notSentOn.has(name)) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    // To the functions verified for, not others the map may have taken on since.
    const event: SourceEvent = {
      topic,
      functions: targets.map((target) => target.function),
      body,
      headers,
      ...(deliveryId ? { id: deliveryId } : {}),
    };
    let responses: InvokerResponse[];
    try {
      responses = await deliver(event);
    } catch (error) {
      if (deliveryId) replays.forget(deliveryId); // the sender's retry must get through
      if (!(error instanceof DeliveryError)) throw error;
      res.writeHead(502, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: error.message, calls: error.failed.map(callOf) }));
      return;
    }
    const [only] = responses;
    if (responses.length === 1 && only && !only.async) {
      res.writeHead(only.status ?? 502, headersToSend(only.headers)).end(only.body);
      return;
    }
    const calls = responses.map(callOf);
    const queued = calls.filter((call) => call.callId !== undefined);
    res.writeHead(202, {
      'Content-Type': 'application/json',
      ...(queued.length === 1 ? { [OpenFaasHeader.CallId]: queued[0]!.callId } : {}),
    });
    res.end(JSON.stringify({ calls }));
  };

  return (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((error: unknown) => {
      // As every fnbus error answers (core/errors.ts): an unexpected one is a bare 500.
      const { status, text, headers } = httpAnswer(error);
      if (status >= 500) logger.error({ err: error, url: req.url }, 'webhook not taken');
      else logger.info({ url: req.url, status, reason: text.trim() }, 'webhook refused');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // A sender retries a 503 (not known yet, not taken yet) the sooner for being told when.
      if (status === 503 && !res.hasHeader('Retry-After')) res.setHeader('Retry-After', '1');
      // A refused body is not read to its end: close the connection after the answer.
      const close = req.complete ? {} : { Connection: 'close' };
      res.writeHead(status, { 'Content-Type': 'text/plain', ...headers, ...close }).end(text);
    });
  };
}

function callOf(response: InvokerResponse) {
  const callId = response.async ? response.headers['x-call-id'] : undefined;
  return {
    function: response.function,
    status: response.status,
    ...(typeof callId === 'string' ? { callId } : {}),
    ...(response.error ? { error: response.error } : {}),
  };
}

/** The whole body, up to `limit` bytes; a 413 beyond. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) {
      reject(new WebhookRefusal(413, `the body is over ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        reject(new WebhookRefusal(413, `the body is over ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}
