import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { verifySignature, type SignatureCheck } from '../../connectors/webhook/signatures.js';
import { ReplayGuard } from '../../connectors/webhook/replay-guard.js';

const check = (over: Partial<SignatureCheck>): SignatureCheck => ({
  scheme: 'github',
  secret: 'secret',
  header: 'X-Signature',
  toleranceSeconds: 300,
  nowSeconds: 1_700_000_000,
  ...over,
});

const hmac = (algorithm: string, secret: string, text: string) =>
  createHmac(algorithm, secret).update(text).digest('hex');

describe('webhook signatures', () => {
  it('GitHub: X-Hub-Signature-256 (GitHub’s published vector), the delivery id', () => {
    const github = check({ scheme: 'github', secret: "It's a Secret to Everybody" });
    const body = Buffer.from('Hello, World!');
    const headers = {
      'x-hub-signature-256':
        'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17',
      'x-github-delivery': 'd-1',
    };
    assert.deepEqual(verifySignature(github, headers, body), { ok: true, deliveryId: 'd-1' });
    const tampered = verifySignature(github, headers, Buffer.from('Hello, World?'));
    assert.equal(tampered.ok, false);
    assert.equal(verifySignature(github, {}, body).ok, false);
    const sha1 = verifySignature(github, { 'x-hub-signature-256': 'sha1=abc' }, body);
    assert.equal(sha1.ok, false);
  });

  it('Slack: v0 signature over v0:timestamp:body (Slack’s published vector), within 5 minutes', () => {
    const body = Buffer.from(
      'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c',
    );
    const headers = {
      'x-slack-request-timestamp': '1531420618',
      'x-slack-signature': 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
    };
    const slack = check({ scheme: 'slack', secret: '8f742231b10e8888abcd99yyyzzz85a5' });
    assert.equal(
      verifySignature({ ...slack, nowSeconds: 1531420618 + 60 }, headers, body).ok,
      true,
    );
    const stale = verifySignature({ ...slack, nowSeconds: 1531420618 + 301 }, headers, body);
    assert.equal(stale.ok, false);
    assert.match(stale.ok ? '' : stale.reason, /tolerance 300 s/);
    const later = { ...headers, 'x-slack-request-timestamp': '1531420619' };
    assert.equal(verifySignature({ ...slack, nowSeconds: 1531420618 }, later, body).ok, false);
  });

  it('Stripe: t and v1 signatures over t.body, any of several v1, within the tolerance', () => {
    const body = Buffer.from('{"id":"evt_1","type":"charge.succeeded"}');
    const t = 1_700_000_000;
    const good = hmac('sha256', 'whsec_test', `${t}.${body.toString()}`);
    const stripe = check({ scheme: 'stripe', secret: 'whsec_test', nowSeconds: t + 10 });
    const header = (value: string) => ({ 'stripe-signature': value });
    assert.deepEqual(verifySignature(stripe, header(`t=${t},v1=${good}`), body), {
      ok: true,
      deliveryId: 'evt_1',
    });
    // A rolled secret: two v1 signatures, one good.
    assert.equal(
      verifySignature(stripe, header(`t=${t},v1=${'0'.repeat(64)},v1=${good}`), body).ok,
      true,
    );
    assert.equal(
      verifySignature(stripe, header(`t=${t + 1},v1=${good}`), body).ok,
      false,
      'signed another t',
    );
    assert.equal(verifySignature(stripe, header(`v1=${good}`), body).ok, false, 'no t');
    assert.equal(
      verifySignature({ ...stripe, nowSeconds: t + 301 }, header(`t=${t},v1=${good}`), body).ok,
      false,
    );
    assert.equal(verifySignature(stripe, header(`t=${t},v1=${good}`), Buffer.from('{}')).ok, false);
  });

  it('generic HMAC as faas-cli invoke --sign HEADER --key KEY sends it: sha256=, or sha1= of older ones', () => {
    const body = Buffer.from('payload');
    const generic = check({ scheme: 'hmac', secret: 'k', header: 'X-Signature' });
    const sha256 = { 'x-signature': `sha256=${hmac('sha256', 'k', 'payload')}` };
    assert.equal(verifySignature(generic, sha256, body).ok, true);
    const sha1 = { 'x-signature': `sha1=${hmac('sha1', 'k', 'payload')}` };
    assert.equal(verifySignature(generic, sha1, body).ok, true);
    assert.equal(verifySignature(generic, { 'x-signature': 'md5=00' }, body).ok, false);
    assert.equal(verifySignature({ ...generic, secret: 'other' }, sha256, body).ok, false);
    assert.equal(verifySignature(generic, {}, body).ok, false);
  });

  it('takes a delivery id once within the window, and again once forgotten or expired', () => {
    const guard = new ReplayGuard(1000);
    assert.equal(guard.firstTime('a', 0), true);
    assert.equal(guard.firstTime('a', 500), false);
    assert.equal(guard.firstTime('a', 1000), true, 'expired, then seen afresh');
    guard.forget('a');
    assert.equal(guard.firstTime('a', 1200), true);
  });
});
