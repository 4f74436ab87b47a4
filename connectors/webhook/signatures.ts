import { createHmac, timingSafeEqual } from 'node:crypto';
import { headerValue } from '../../core/http-headers.js';

/** The verification schemes a topic can require. */
export const signatureSchemes = ['github', 'stripe', 'slack', 'hmac'] as const;
export type SignatureScheme = (typeof signatureSchemes)[number];

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

export interface SignatureCheck {
  scheme: SignatureScheme;
  secret: string;
  /** `hmac` only: the header carrying the signature (faas-cli's `--sign NAME`). */
  header: string;
  /** Stripe and Slack: how old a signed timestamp may be, either way, in seconds. */
  toleranceSeconds: number;
  /** Now, in seconds since the epoch. */
  nowSeconds: number;
}

/** A good signature, with what identifies the delivery (for de-duplication) when the sender says. */
export type Verdict = { ok: true; deliveryId?: string } | { ok: false; reason: string };

/**
 * Checks a webhook's signature over its raw body, as the sender defines it:
 * - `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`; the delivery is
 *   `X-GitHub-Delivery`.
 * - `stripe`: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>[,v1=...]`,
 *   `t` within the tolerance; the delivery is the event's `id` in the body.
 * - `slack`: `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>` with
 *   `X-Slack-Request-Timestamp: <ts>` within the tolerance; the delivery is the signature itself.
 * - `hmac`: faas-cli's `invoke --sign HEADER --key SECRET` format, `HEADER: sha256=<hex
 *   HMAC-SHA256(secret, body)>` (`sha1=` from older faas-cli too); the delivery is
 *   `X-Delivery-Id` when sent.
 * Comparisons take the same time whatever the signature.
 */
export function verifySignature(check: SignatureCheck, headers: Headers, body: Buffer): Verdict {
  switch (check.scheme) {
    case 'github':
      return verifyGithub(check, headers, body);
    case 'stripe':
      return verifyStripe(check, headers, body);
    case 'slack':
      return verifySlack(check, headers, body);
    case 'hmac':
      return verifyHmac(check, headers, body);
  }
}

function hmacHex(algorithm: 'sha256' | 'sha1', secret: string, ...parts: (string | Buffer)[]) {
  const mac = createHmac(algorithm, secret);
  for (const part of parts) mac.update(part);
  return mac.digest('hex');
}

/** Hex strings compared in constant time; false for any length mismatch. */
function sameHex(expected: string, given: string): boolean {
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(given.toLowerCase(), 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

function verifyGithub(check: SignatureCheck, headers: Headers, body: Buffer): Verdict {
  const given = headerValue(headers, 'x-hub-signature-256');
  if (!given) return { ok: false, reason: 'no X-Hub-Signature-256 header' };
  if (!given.startsWith('sha256='))
    return { ok: false, reason: 'X-Hub-Signature-256 is not sha256=…' };
  if (!sameHex(hmacHex('sha256', check.secret, body), given.slice(7))) {
    return { ok: false, reason: 'X-Hub-Signature-256 does not match the body' };
  }
  return { ok: true, deliveryId: headerValue(headers, 'x-github-delivery') };
}

function verifyStripe(check: SignatureCheck, headers: Headers, body: Buffer): Verdict {
  const given = headerValue(headers, 'stripe-signature');
  if (!given) return { ok: false, reason: 'no Stripe-Signature header' };
  let timestamp: string | undefined;
  const signatures: string[] = [];
  for (const item of given.split(',')) {
    const at = item.indexOf('=');
    const key = item.slice(0, at).trim();
    const value = item.slice(at + 1).trim();
    if (key === 't') timestamp = value;
    else if (key === 'v1') signatures.push(value);
  }
  if (!timestamp || !/^\d+$/.test(timestamp)) {
    return { ok: false, reason: 'Stripe-Signature has no timestamp (t=)' };
  }
  if (signatures.length === 0) return { ok: false, reason: 'Stripe-Signature has no v1 signature' };
  const stale = outsideTolerance(check, Number(timestamp));
  if (stale) return stale;
  const expected = hmacHex('sha256', check.secret, `${timestamp}.`, body);
  // Every signature is compared, so the time taken does not tell which matched.
  const matched = signatures.map((sig) => sameHex(expected, sig)).some(Boolean);
  if (!matched) return { ok: false, reason: 'Stripe-Signature does not match the body' };
  return { ok: true, deliveryId: eventId(body) };
}

function verifySlack(check: SignatureCheck, headers: Headers, body: Buffer): Verdict {
  const given = headerValue(headers, 'x-slack-signature');
  const timestamp = headerValue(headers, 'x-slack-request-timestamp');
  if (!given) return { ok: false, reason: 'no X-Slack-Signature header' };
  if (!timestamp || !/^\d+$/.test(timestamp)) {
    return { ok: false, reason: 'no X-Slack-Request-Timestamp header' };
  }
  if (!given.startsWith('v0=')) return { ok: false, reason: 'X-Slack-Signature is not v0=…' };
  const stale = outsideTolerance(check, Number(timestamp));
  if (stale) return stale;
  if (!sameHex(hmacHex('sha256', check.secret, `v0:${timestamp}:`, body), given.slice(3))) {
    return { ok: false, reason: 'X-Slack-Signature does not match the body' };
  }
  return { ok: true, deliveryId: given };
}

function verifyHmac(check: SignatureCheck, headers: Headers, body: Buffer): Verdict {
  const given = headerValue(headers, check.header);
  if (!given) return { ok: false, reason: `no ${check.header} header` };
  const at = given.indexOf('=');
  const algorithm = given.slice(0, at);
  if (algorithm !== 'sha256' && algorithm !== 'sha1') {
    return { ok: false, reason: `${check.header} is not sha256=… (or sha1=…)` };
  }
  if (!sameHex(hmacHex(algorithm, check.secret, body), given.slice(at + 1))) {
    return { ok: false, reason: `${check.header} does not match the body` };
  }
  return { ok: true, deliveryId: headerValue(headers, 'x-delivery-id') };
}

function outsideTolerance(check: SignatureCheck, timestamp: number): Verdict | undefined {
  const skew = Math.abs(check.nowSeconds - timestamp);
  if (skew <= check.toleranceSeconds) return undefined;
  return {
    ok: false,
    reason: `the signed timestamp is ${Math.round(skew)} s away from now (tolerance ${check.toleranceSeconds} s): a replay or a wrong clock`,
  };
}

function eventId(body: Buffer): string | undefined {
  try {
    const id = (JSON.parse(body.toString('utf8')) as { id?: unknown }).id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}
