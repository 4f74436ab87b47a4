import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { request } from '../helpers/http.js';
import { fixture, startWatchdog, type RunningWatchdog } from '../helpers/watchdog.js';

/** Parses env-dump.sh's output (`env`: one VAR=value per line). */
function parseEnv(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) vars.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return vars;
}

const marker = `marker-${Math.random().toString(36).slice(2)}`;

describe('CGI environment (cgi_headers default true)', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    watchdog = await startWatchdog({
      fprocess: fixture('env-dump.sh'),
      FNBUS_TEST_MARKER: marker,
    });
  });
  after(() => watchdog.stop());

  it('describes the request in Http_ variables', async () => {
    const body = 'hello body';
    const res = await request(`${watchdog.url}/some/path?x=1&y=two%20words`, {
      method: 'POST',
      headers: {
        // Lower case on the wire: the watchdog canonicalises the names.
        'content-type': 'text/plain',
        'x-call-id': 'call-123',
        'x-foo-bar': 'baz',
        // UTF-8 on the wire, as Go's clients (OpenFaaS's connectors) send text past ASCII.
        'x-city': Buffer.from('Zürich 厨房').toString('latin1'),
      },
      // A Buffer: node writes a string body's first chunk and the head together, in its encoding.
      body: Buffer.from(body),
    });
    assert.equal(res.status, 200);
    const env = parseEnv(res.text);
    assert.equal(env.get('Http_Method'), 'POST');
    assert.equal(env.get('Http_Path'), '/some/path');
    assert.equal(env.get('Http_Query'), 'x=1&y=two%20words');
    assert.equal(env.get('Http_Host'), `127.0.0.1:${watchdog.port}`);
    assert.equal(env.get('Http_Content_Length'), String(body.length));
    assert.equal(env.get('Http_ContentLength'), String(body.length));
    assert.equal(env.get('Http_Content_Type'), 'text/plain');
    assert.equal(env.get('Http_X_Call_Id'), 'call-123');
    assert.equal(env.get('Http_X_Foo_Bar'), 'baz');
    assert.equal(env.get('Http_X_City'), 'Zürich 厨房');
  });

  it('sets no Http_Query when the query is empty', async () => {
    for (const path of ['/plain', '/plain?']) {
      const res = await request(`${watchdog.url}${path}`, { method: 'GET' });
      assert.equal(res.status, 200);
      const env = parseEnv(res.text);
      assert.equal(env.get('Http_Method'), 'GET');
      assert.equal(env.get('Http_Path'), '/plain');
      assert.equal(env.has('Http_Query'), false, `${path}: Http_Query=${env.get('Http_Query')}`);
    }
  });

  it("passes the watchdog's own environment on", async () => {
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: '' });
    const env = parseEnv(res.text);
    assert.equal(env.get('FNBUS_TEST_MARKER'), marker);
    assert.equal(env.get('fprocess'), fixture('env-dump.sh'));
    assert.equal(env.get('TMPDIR'), watchdog.tmpdir);
  });
});

describe('CGI environment with cgi_headers=false', () => {
  it('sets no Http_ variables but keeps the inherited environment', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: fixture('env-dump.sh'),
      cgi_headers: 'false',
      FNBUS_TEST_MARKER: marker,
    });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/a?b=c`, {
      method: 'POST',
      headers: { 'x-foo-bar': 'baz' },
      body: 'x',
    });
    assert.equal(res.status, 200);
    const env = parseEnv(res.text);
    assert.deepEqual(
      [...env.keys()].filter((name) => name.startsWith('Http_')),
      [],
    );
    assert.equal(env.get('FNBUS_TEST_MARKER'), marker);
  });
});
