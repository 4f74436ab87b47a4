import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';

import { request, streamingUpload } from '../helpers/http.js';
import { fixture, fprocess, startWatchdog, type RunningWatchdog } from '../helpers/watchdog.js';

const MB = 1024 * 1024;

describe('streaming mode: cat', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    watchdog = await startWatchdog({ mode: 'streaming', fprocess: 'cat' });
  });
  after(() => watchdog.stop());

  it('answers 200 with application/octet-stream by default', async () => {
    const res = await request(`${watchdog.url}/`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: 'streamed',
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/octet-stream');
    assert.equal(res.text, 'streamed');
    assert.match(String(res.headers['x-duration-seconds']), /^\d+(\.\d+)?$/);
  });

  it('answers 200 with an empty body for an empty request', async () => {
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: '' });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 0);
  });

  it('streams 32 MB back byte-identical, answering before the upload has finished', async () => {
    const result = await streamingUpload(`${watchdog.url}/`, { totalBytes: 32 * MB });
    assert.equal(result.status, 200);
    assert.equal(result.receivedBytes, result.sentBytes);
    assert.equal(result.receivedSha256, result.sentSha256);
    assert.ok(result.respondedBeforeUploadEnd, 'the response began only after the upload ended');
    assert.ok(
      result.receivedBeforeUploadEnd > 0,
      'no response byte arrived before the upload ended: the body was buffered',
    );
  });

  it('streams an upload with a Content-Length too', async () => {
    const result = await streamingUpload(`${watchdog.url}/`, {
      totalBytes: 8 * MB,
      contentLength: true,
    });
    assert.equal(result.status, 200);
    assert.equal(result.receivedSha256, result.sentSha256);
    assert.ok(result.receivedBeforeUploadEnd > 0);
  });

  it('sends output while the request is still open (first chunk before the body ends)', async () => {
    const req = httpRequest(`${watchdog.url}/`, {
      method: 'POST',
      agent: false,
      signal: AbortSignal.timeout(10_000),
    });
    const chunks: string[] = [];
    let gotChunk!: () => void;
    const firstChunk = new Promise<void>((resolve) => (gotChunk = resolve));
    const ended = new Promise<number>((resolve, reject) => {
      req.once('error', reject);
      req.once('response', (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          chunks.push(chunk);
          gotChunk();
        });
        res.once('end', () => resolve(res.statusCode ?? 0));
      });
    });
    req.write('first line\n');
    await firstChunk;
    assert.equal(chunks.join(''), 'first line\n');
    req.end('second line\n');
    assert.equal(await ended, 200);
    assert.equal(chunks.join(''), 'first line\nsecond line\n');
  });
});

describe('streaming mode: failures', () => {
  it('answers 500 when the process exits non-zero before any output', async (t) => {
    const watchdog = await startWatchdog({
      mode: 'streaming',
      fprocess: fprocess('sh', '-c', 'cat > /dev/null; echo oops >&2; exit 3'),
    });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 500);
    assert.match(res.text, /exit status 3/);
    // combine_output is off outside fork mode: stderr goes to the log.
    assert.doesNotMatch(res.text, /oops/);
    await watchdog.waitForStderr(/stderr: oops/);
  });

  it('cuts the response when the process fails after its output began', async (t) => {
    const watchdog = await startWatchdog({ mode: 'streaming', fprocess: fixture('exit-1.sh') });
    t.after(() => watchdog.stop());
    await assert.rejects(request(`${watchdog.url}/`, { method: 'POST', body: 'x' }));
  });

  it('answers 500 marked internal when the command does not exist', async (t) => {
    const watchdog = await startWatchdog({
      mode: 'streaming',
      fprocess: '/nonexistent/fnbus-no-such-command',
    });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 500);
    assert.equal(res.headers['x-openfaas-internal'], 'fnbus-watchdog');
  });
});

describe('serializing mode', () => {
  it('answers 200 with the whole output on success', async (t) => {
    const watchdog = await startWatchdog({ mode: 'serializing', fprocess: 'cat' });
    t.after(() => watchdog.stop());
    const body = Buffer.alloc(256 * 1024, 'abc');
    const res = await request(`${watchdog.url}/`, { method: 'POST', body });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/octet-stream');
    assert.equal(res.headers['content-length'], String(body.length));
    assert.match(String(res.headers['x-duration-seconds']), /^\d+(\.\d+)?$/);
    assert.deepEqual(res.body, body);
  });

  it('answers 500 when the process exits 1', async (t) => {
    const watchdog = await startWatchdog({ mode: 'serializing', fprocess: fixture('exit-1.sh') });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 500);
    assert.match(res.text, /^exit status 1/);
    assert.match(String(res.headers['x-duration-seconds']), /^\d+(\.\d+)?$/);
  });
});
