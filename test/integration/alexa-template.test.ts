import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { sign } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { request } from '../helpers/http.js';
import { ready, startHub, stopHub, systemAuth } from '../helpers/hub.js';
import { makeTempDir, repoRoot } from '../helpers/watchdog.js';

type Verify = (headers: Record<string, string>, body: Buffer) => Promise<void>;
type Handler = (
  skill: unknown,
  context: { reply(): unknown; secret(name: string): string },
) => unknown;
interface VerifyModule {
  createVerifier: (options: {
    fetchCertificate?: (url: string) => string | Promise<string>;
    trustedRoots?: string[];
    now?: () => number;
  }) => Verify;
  checkCertUrl: (url: string) => string;
}
interface RunnerModule {
  createSkillServer: (options: {
    handler: Handler;
    verify?: Verify | null;
    skillId?: string;
    log?: { error(text: string): void };
  }) => Server;
}

const template = join(repoRoot, 'templates', 'alexa');
const { createVerifier, checkCertUrl } = (await import(
  pathToFileURL(join(template, 'verify.js')).href
)) as VerifyModule;
const { createSkillServer } = (await import(
  pathToFileURL(join(template, 'index.js')).href
)) as RunnerModule;
const { default: sampleHandler } = (await import(
  pathToFileURL(join(template, 'function', 'handler.js')).href
)) as { default: Handler };

/** A CA, an intermediate and leaves, made with openssl for these tests. */
const pki = makeTempDir('fnbus-alexa-pki-');
/** `openssl` with the words of `command` (no quoting needed in them), then `more` arguments. */
const openssl = (command: string, ...more: string[]) =>
  execFileSync('openssl', [...command.split(' '), ...more], { cwd: pki, stdio: 'pipe' });
function makeCa(name: string) {
  openssl(
    `req -x509 -newkey rsa:2048 -nodes -keyout ${name}.key -out ${name}.pem -days 30`,
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  );
}
function makeCert(name: string, issuer: string, ext: string) {
  openssl(
    `req -newkey rsa:2048 -nodes -keyout ${name}.key -out ${name}.csr`,
    '-subj',
    `/CN=${name}`,
  );
  writeFileSync(join(pki, `${name}.ext`), `${ext}\n`);
  openssl(
    `x509 -req -in ${name}.csr -CA ${issuer}.pem -CAkey ${issuer}.key -CAcreateserial -out ${name}.pem -days 10 -extfile ${name}.ext`,
  );
}
makeCa('root');
makeCa('other-root');
makeCert(
  'intermediate',
  'root',
  'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign',
);
makeCert(
  'leaf',
  'intermediate',
  'subjectAltName=DNS:echo-api.amazon.com\nkeyUsage=critical,digitalSignature',
);
makeCert(
  'stranger',
  'intermediate',
  'subjectAltName=DNS:example.com\nkeyUsage=critical,digitalSignature',
);
const pem = (name: string) => readFileSync(join(pki, `${name}.pem`), 'utf8');
const chain = pem('leaf') + pem('intermediate');
const certUrl = 'https://s3.amazonaws.com/echo.api/echo-api-cert.pem';

function skillRequest(type: string, more: Record<string, unknown> = {}, at = new Date()) {
  return {
    version: '1.0',
    session: {
      new: true,
      sessionId: 's-1',
      application: { applicationId: 'amzn1.ask.skill.test' },
      attributes: {},
    },
    context: {
      System: { application: { applicationId: 'amzn1.ask.skill.test' }, user: { userId: 'u-1' } },
    },
    request: { type, requestId: 'r-1', timestamp: at.toISOString(), locale: 'en-GB', ...more },
  };
}

/** A request as Amazon sends it, signed with `key`. */
function signed(envelope: unknown, key = 'leaf', url = certUrl) {
  const body = Buffer.from(JSON.stringify(envelope));
  const signature = sign('sha256', body, readFileSync(join(pki, `${key}.key`))).toString('base64');
  return { body, headers: { signaturecertchainurl: url, 'signature-256': signature } };
}

function verifier(over: Parameters<VerifyModule['createVerifier']>[0] = {}) {
  const fetched: string[] = [];
  const verify = createVerifier({
    fetchCertificate: (url) => {
      fetched.push(url);
      return chain;
    },
    trustedRoots: [pem('root')],
    ...over,
  });
  return { verify, fetched };
}

describe('alexa template: request verification', () => {
  it('accepts a request signed by a certificate for echo-api.amazon.com that leads to a trusted CA', async () => {
    const { verify, fetched } = verifier();
    const { headers, body } = signed(skillRequest('LaunchRequest'));
    await verify(headers, body);
    await verify(headers, body);
    assert.deepEqual(fetched, [certUrl], 'the chain is fetched once, then cached');
  });

  it('applies Amazon’s rules to SignatureCertChainUrl', () => {
    for (const good of [
      'https://s3.amazonaws.com/echo.api/echo-api-cert.pem',
      'HTTPS://s3.amazonaws.com/echo.api/echo-api-cert.pem',
      'https://S3.AMAZONAWS.COM/echo.api/echo-api-cert.pem',
      'https://s3.amazonaws.com:443/echo.api/echo-api-cert.pem',
      'https://s3.amazonaws.com/echo.api/../echo.api/echo-api-cert.pem',
    ]) {
      assert.doesNotThrow(() => checkCertUrl(good), good);
    }
    for (const bad of [
      'http://s3.amazonaws.com/echo.api/echo-api-cert.pem',
      'https://notamazon.com/echo.api/echo-api-cert.pem',
      'https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem',
      'https://s3.amazonaws.com/invalid.path/echo-api-cert.pem',
      'https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem',
      'https://s3.amazonaws.com/echo.api/../invalid.path/echo-api-cert.pem',
      'not a url',
    ]) {
      assert.throws(() => checkCertUrl(bad), bad);
    }
  });

  it('rejects each kind of bad request', async () => {
    const { verify } = verifier();
    const good = signed(skillRequest('LaunchRequest'));
    const rejects = (headers: Record<string, string>, body: Buffer, why: RegExp, v = verify) =>
      assert.rejects(v(headers, body), why);
    await rejects(
      { 'signature-256': good.headers['signature-256'] },
      good.body,
      /no SignatureCertChainUrl/,
    );
    await rejects({ signaturecertchainurl: certUrl }, good.body, /no Signature-256/);
    await rejects(
      good.headers,
      Buffer.from(good.body.toString().replace('s-1', 's-2')),
      /does not match the body/,
    );
    const stale = signed(skillRequest('LaunchRequest', {}, new Date(Date.now() - 151_000)));
    await rejects(stale.headers, stale.body, /more than 150 s/);
    const stranger = signed(skillRequest('LaunchRequest'), 'stranger');
    await rejects(
      stranger.headers,
      stranger.body,
      /not for echo-api.amazon.com/,
      verifier({ fetchCertificate: () => pem('stranger') + pem('intermediate') }).verify,
    );
    await rejects(
      good.headers,
      good.body,
      /leads to no trusted CA/,
      verifier({ trustedRoots: [pem('other-root')] }).verify,
    );
    await rejects(
      good.headers,
      good.body,
      /is not signed by the next one/,
      verifier({ fetchCertificate: () => pem('leaf') + pem('other-root') }).verify,
    );
    const later = Date.now() + 20 * 24 * 3600_000;
    const future = signed(skillRequest('LaunchRequest', {}, new Date(later)));
    await rejects(
      future.headers,
      future.body,
      /is not valid now/,
      verifier({ now: () => later }).verify,
    );
    const elsewhere = signed(
      skillRequest('LaunchRequest'),
      'leaf',
      'https://example.com/echo.api/cert.pem',
    );
    await rejects(elsewhere.headers, elsewhere.body, /not on s3.amazonaws.com/);
  });

  it('does not cache a failed fetch', async () => {
    let tries = 0;
    const { verify } = verifier({
      fetchCertificate: () => {
        tries += 1;
        if (tries === 1) throw new Error('unreachable');
        return chain;
      },
    });
    const { headers, body } = signed(skillRequest('LaunchRequest'));
    await assert.rejects(verify(headers, body));
    await verify(headers, body);
    assert.equal(tries, 2);
  });
});

/** The runner, in this process, with the sample handler and an injected verifier. */
const calls: unknown[] = [];
const errors: string[] = [];
const server = createSkillServer({
  handler: (skill, context) => {
    calls.push(skill);
    return sampleHandler(skill, context);
  },
  verify: verifier().verify,
  skillId: 'amzn1.ask.skill.test',
  log: { error: (text) => errors.push(text) },
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
after(() => server.close());

describe('alexa template: context.secret', () => {
  it("reads the function's secret from FNBUS_SECRETS_PATH", async (t) => {
    const secrets = makeTempDir('fnbus-alexa-secrets-');
    writeFileSync(join(secrets, 'api-key'), 'open sesame');
    const before = process.env.FNBUS_SECRETS_PATH;
    process.env.FNBUS_SECRETS_PATH = secrets;
    t.after(() => {
      if (before === undefined) delete process.env.FNBUS_SECRETS_PATH;
      else process.env.FNBUS_SECRETS_PATH = before;
    });
    const withSecret = createSkillServer({
      handler: (_skill, context) =>
        (context.reply() as { speak(text: string): unknown }).speak(context.secret('api-key')),
      verify: null,
    });
    withSecret.listen(0, '127.0.0.1');
    await once(withSecret, 'listening');
    t.after(() => withSecret.close());
    const port = (withSecret.address() as AddressInfo).port;
    const res = await request(`http://127.0.0.1:${port}/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(skillRequest('LaunchRequest')),
    });
    assert.equal(res.status, 200, res.text);
    assert.match(res.text, /open sesame/);
  });
});

describe('alexa template: the skill endpoint', () => {
  const post = ({ headers, body }: { headers: Record<string, string>; body: Buffer }) =>
    request(url, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body,
    });

  it('answers a LaunchRequest with speech and a reprompt, keeping the session open', async () => {
    const res = await post(signed(skillRequest('LaunchRequest')));
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.text), {
      version: '1.0',
      response: {
        shouldEndSession: false,
        outputSpeech: { type: 'PlainText', text: 'Welcome. Say hello to me.' },
        reprompt: { outputSpeech: { type: 'PlainText', text: 'Say hello.' } },
      },
    });
  });

  it('gives an IntentRequest’s slots to the handler, and answers with a card and attributes', async () => {
    const envelope = skillRequest('IntentRequest', {
      intent: { name: 'HelloIntent', slots: { name: { name: 'name', value: 'Ann' } } },
    });
    envelope.session.attributes = { count: 2 };
    const res = await post(signed(envelope));
    assert.deepEqual(JSON.parse(res.text), {
      version: '1.0',
      sessionAttributes: { count: 3 },
      response: {
        shouldEndSession: true,
        outputSpeech: { type: 'PlainText', text: 'Hello, Ann.' },
        card: { type: 'Simple', title: 'Hello', content: 'Said hello to Ann' },
      },
    });
    const seen = calls.at(-1) as { intent: { slots: Record<string, string> }; locale: string };
    assert.deepEqual(seen.intent.slots, { name: 'Ann' });
    assert.equal(seen.locale, 'en-GB');
  });

  it('ends on a SessionEndedRequest', async () => {
    const res = await post(
      signed(skillRequest('SessionEndedRequest', { reason: 'USER_INITIATED' })),
    );
    assert.deepEqual(JSON.parse(res.text), {
      version: '1.0',
      response: { shouldEndSession: true },
    });
  });

  it('rejects a bad request, or another skill’s, before the handler runs', async () => {
    const before = calls.length;
    const good = signed(skillRequest('LaunchRequest'));
    const tampered = await post({
      headers: good.headers,
      body: Buffer.from(good.body.toString().replace('en-GB', 'en-US')),
    });
    assert.equal(tampered.status, 400);
    assert.match(tampered.text, /Signature-256 does not match the body/);
    const unsigned = await request(url, { method: 'POST', body: good.body });
    assert.equal(unsigned.status, 400);
    const other = skillRequest('LaunchRequest');
    other.context.System.application.applicationId = 'amzn1.ask.skill.other';
    assert.equal((await post(signed(other))).status, 400);
    assert.equal(calls.length, before, 'the handler never ran');
    assert.ok(errors.length >= 3);
  });
});

describe('alexa template through fnbus up', () => {
  it('runs as a function: unsigned requests are refused, and with verification off it answers', async (t) => {
    const dir = makeTempDir('fnbus-alexa-');
    const { hub, url: gateway } = await startHub(['--connectors', 'none'], join(dir, 'state'));
    t.after(() => stopHub(hub));
    for (const [name, envVars] of [
      ['skill', {}],
      ['skill-local', { ALEXA_VERIFY: 'false' }],
    ] as const) {
      const res = await request(`${gateway}/system/functions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...systemAuth },
        body: JSON.stringify({
          service: name,
          image: 'fnbus/alexa',
          envVars,
          annotations: { 'fnbus.lang': 'alexa', 'fnbus.handler': join(template, 'function') },
        }),
      });
      assert.equal(res.status, 202, res.text);
      await ready(gateway, name);
    }
    const body = JSON.stringify(skillRequest('LaunchRequest'));
    const refused = await request(`${gateway}/function/skill`, { method: 'POST', body });
    assert.equal(refused.status, 400);
    assert.match(refused.text, /no SignatureCertChainUrl/);
    const local = await request(`${gateway}/function/skill-local`, { method: 'POST', body });
    assert.equal(local.status, 200);
    assert.match(local.text, /Welcome/);
  });
});
