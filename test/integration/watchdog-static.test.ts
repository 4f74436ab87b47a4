import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { request } from '../helpers/http.js';
import { makeTempDir, startWatchdog, type RunningWatchdog } from '../helpers/watchdog.js';

const secret = `top secret ${Math.random()}`;
const indexHtml = '<!doctype html><title>fnbus</title><p>index</p>\n';

/** Sends `path` exactly as written (no client-side normalisation) and returns the raw response. */
function rawGet(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let response = '';
    socket.setEncoding('utf8');
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer within 5s')));
    socket.on('data', (text: string) => (response += text));
    socket.once('error', reject);
    socket.once('close', () => resolve(response));
    socket.once('connect', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
    );
  });
}

describe('static mode', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    // <dir>/secret.txt sits next to the served folder <dir>/public: it must stay out of reach.
    const dir = makeTempDir();
    const root = join(dir, 'public');
    mkdirSync(join(root, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'secret.txt'), secret);
    writeFileSync(join(root, 'index.html'), indexHtml);
    writeFileSync(join(root, 'file.txt'), 'a file\n');
    writeFileSync(join(root, 'sub', 'index.html'), 'sub index\n');
    writeFileSync(join(root, '100%.txt'), 'percent\n');
    writeFileSync(join(root, 'a b.txt'), 'space\n');
    writeFileSync(join(root, 'A.txt'), 'capital A\n');
    writeFileSync(join(root, '%41.txt'), 'percent 41\n');
    watchdog = await startWatchdog({ mode: 'static', static_path: root });
  });
  after(() => watchdog.stop());

  it('serves index.html for /', async () => {
    const res = await request(`${watchdog.url}/`);
    assert.equal(res.status, 200);
    assert.equal(res.text, indexHtml);
    assert.match(String(res.headers['content-type']), /^text\/html/);
  });

  it('serves a file', async () => {
    const res = await request(`${watchdog.url}/file.txt`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'a file\n');
    assert.match(String(res.headers['content-type']), /^text\/plain/);
  });

  it('serves index.html of a sub-folder', async () => {
    const res = await request(`${watchdog.url}/sub/`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'sub index\n');
  });

  it('serves a file whose name needs percent-encoding', async () => {
    const space = await request(`${watchdog.url}/a%20b.txt`);
    assert.equal(space.status, 200);
    assert.equal(space.text, 'space\n');
  });

  it('serves a file whose name has a "%" in it (/100%25.txt)', async () => {
    const res = await request(`${watchdog.url}/100%25.txt`);
    assert.equal(res.status, 200, `/100%25.txt → ${res.status} ${res.text}`);
    assert.equal(res.text, 'percent\n');
  });

  it('decodes the path once: /%2541.txt is the file "%41.txt", not "A.txt"', async () => {
    const res = await request(`${watchdog.url}/%2541.txt`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'percent 41\n', '/%2541.txt served another file');
  });

  it('answers 404 for a missing file', async () => {
    const res = await request(`${watchdog.url}/missing.txt`);
    assert.equal(res.status, 404);
  });

  it('does not let ../ escape the folder', async () => {
    for (const path of [
      '/../secret.txt',
      '/sub/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/sub/..%2f..%2fsecret.txt',
      '/%2e%2e%2fsecret.txt',
      '/..%5csecret.txt',
      '/%252e%252e%252fsecret.txt',
    ]) {
      const response = await rawGet(watchdog.port, path);
      assert.match(response, /^HTTP\/1\.1 [1-5]\d\d /, path);
      assert.doesNotMatch(response, /^HTTP\/1\.1 2\d\d /, `${path} was served`);
      assert.ok(!response.includes(secret), `${path} leaked the file outside static_path`);
    }
  });

  it('refuses POST with 405', async () => {
    const res = await request(`${watchdog.url}/file.txt`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 405);
  });

  it('answers HEAD', async () => {
    const res = await request(`${watchdog.url}/file.txt`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], '7');
  });

  it('answers /_/health without an fprocess', async () => {
    const res = await request(`${watchdog.url}/_/health`);
    assert.equal(res.status, 200);
  });
});
