import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { freePort, request, streamedRequest, streamingUpload } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import {
  fixture,
  fprocess,
  makeTempDir,
  startNodeFunction,
  startWatchdog,
  type RunningWatchdog,
} from '../helpers/watchdog.js';

const MB = 1024 * 1024;
const internal = 'x-openfaas-internal';

/** What node-http-server.cjs answers for an ordinary call. */
interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

describe('http mode: node function', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    watchdog = await startNodeFunction();
  });
  after(() => watchdog.stop());

  it('passes method, path, query, headers and body through, and the answer back', async () => {
    const res = await request(`${watchdog.url}/some/path?a=1&b=two%20words`, {
      method: 'PUT',
      headers: { 'Content-Type': 'text/plain', 'X-Custom': 'custom value' },
      body: 'the body',
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers['x-echo'], 'yes');
    assert.equal(res.headers['content-type'], 'application/json');
    assert.match(String(res.headers['x-duration-seconds']), /^\d+(\.\d+)?$/);
    const echo = JSON.parse(res.text) as Echo;
    assert.equal(echo.method, 'PUT');
    assert.equal(echo.url, '/some/path?a=1&b=two%20words');
    assert.equal(echo.headers['x-custom'], 'custom value');
    assert.equal(echo.headers['content-type'], 'text/plain');
    // The Host header is preserved, as of-watchdog's reverse proxy does.
    assert.equal(echo.headers.host, `127.0.0.1:${watchdog.port}`);
    assert.equal(echo.body, 'the body');
  });

  for (const method of ['GET', 'POST', 'DELETE', 'PATCH', 'OPTIONS']) {
    it(`forwards ${method}`, async () => {
      const res = await request(`${watchdog.url}/m`, { method });
      assert.equal(res.status, 201);
      assert.equal((JSON.parse(res.text) as Echo).method, method);
    });
  }

  it("passes the function's status and headers back (/status/418)", async () => {
    const res = await request(`${watchdog.url}/status/418`);
    assert.equal(res.status, 418);
    assert.equal(res.headers['x-from'], 'function');
    assert.equal(res.text, 'status');
    assert.equal(res.headers[internal], undefined);
    assert.match(String(res.headers['x-duration-seconds']), /^\d+(\.\d+)?$/);
  });

  it('streams server-sent events as they come (/sse)', async () => {
    const res = await streamedRequest(`${watchdog.url}/sse`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    assert.equal(res.text, 'data: 0\n\ndata: 1\n\ndata: 2\n\n');
    const first = res.chunks[0];
    assert.ok(first);
    assert.match(first.data.toString(), /^data: 0\n\n/);
    // The events are 20ms apart: a buffering proxy would deliver them all at the end.
    assert.ok(
      res.endedAt - first.at >= 15,
      `the first event arrived only ${res.endedAt - first.at}ms before the end`,
    );
  });

  it('streams a chunked response as it comes (/chunked)', async () => {
    const res = await streamedRequest(`${watchdog.url}/chunked`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.text, 'one\ntwo\n');
    const first = res.chunks[0];
    assert.ok(first);
    assert.equal(first.data.toString(), 'one\n');
    assert.ok(res.endedAt - first.at >= 10, `${res.endedAt - first.at}ms`);
  });

  it('streams a 32 MB upload back identical, answering before the upload has finished', async () => {
    const result = await streamingUpload(`${watchdog.url}/stream-echo`, { totalBytes: 32 * MB });
    assert.equal(result.status, 200);
    assert.equal(result.receivedBytes, result.sentBytes);
    assert.equal(result.receivedSha256, result.sentSha256);
    assert.ok(result.respondedBeforeUploadEnd, 'the response began only after the upload ended');
    assert.ok(result.receivedBeforeUploadEnd > 0, 'the upload was buffered before forwarding');
  });

  it('streams a large upload with a Content-Length too', async () => {
    const result = await streamingUpload(`${watchdog.url}/stream-echo`, {
      totalBytes: 8 * MB,
      contentLength: true,
    });
    assert.equal(result.status, 200);
    assert.equal(result.receivedSha256, result.sentSha256);
    assert.ok(result.receivedBeforeUploadEnd > 0, 'the upload was buffered before forwarding');
  });

  it('answers 504 marked internal when X-Timeout passes before the function answers', async () => {
    const started = performance.now();
    const res = await request(`${watchdog.url}/?ms=2000`, { headers: { 'X-Timeout': '300ms' } });
    const elapsed = performance.now() - started;
    assert.equal(res.status, 504);
    assert.equal(res.headers[internal], 'fnbus-watchdog');
    assert.ok(elapsed >= 250 && elapsed < 1500, `answered after ${elapsed}ms`);
  });

  it('answers 400 for an X-Timeout that is not a duration', async () => {
    for (const value of ['soon', '-1s', '10x']) {
      const res = await request(`${watchdog.url}/`, { headers: { 'X-Timeout': value } });
      assert.equal(res.status, 400, value);
      assert.match(res.text, /X-Timeout/);
    }
  });

  it('keeps answering after the calls above', async () => {
    const res = await request(`${watchdog.url}/after`);
    assert.equal(res.status, 201);
    const health = await request(`${watchdog.url}/_/health`);
    assert.equal(health.status, 200);
  });
});

describe('http mode: exec_timeout', () => {
  it('cannot be lengthened by X-Timeout', async (t) => {
    const watchdog = await startNodeFunction({ exec_timeout: '300ms' });
    t.after(() => watchdog.stop());
    const started = performance.now();
    const res = await request(`${watchdog.url}/?ms=2000`, { headers: { 'X-Timeout': '10s' } });
    const elapsed = performance.now() - started;
    assert.equal(res.status, 504);
    assert.equal(res.headers[internal], 'fnbus-watchdog');
    assert.ok(elapsed >= 250 && elapsed < 1500, `answered after ${elapsed}ms`);
    // A call within the limit still succeeds.
    const fast = await request(`${watchdog.url}/?ms=10`, { headers: { 'X-Timeout': '10s' } });
    assert.equal(fast.status, 201);
  });
});

describe('http mode: buffer_http', () => {
  it('buffers a chunked upload and forwards it with a Content-Length', async (t) => {
    const watchdog = await startNodeFunction({ buffer_http: 'true' });
    t.after(() => watchdog.stop());
    const parts = ['part one, ', 'part two, ', 'part three'];
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(`${watchdog.url}/buffered`, {
        method: 'POST',
        agent: false,
        headers: { 'Content-Type': 'text/plain' },
        signal: AbortSignal.timeout(10_000),
      });
      req.once('error', reject);
      req.once('response', (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.once('end', () => resolve({ status: response.statusCode ?? 0, text }));
      });
      for (const part of parts) req.write(part);
      req.end();
    });
    assert.equal(res.status, 201);
    const echo = JSON.parse(res.text) as Echo;
    assert.equal(echo.body, parts.join(''));
    assert.equal(echo.headers['content-length'], String(Buffer.byteLength(parts.join(''))));
    assert.equal(echo.headers['transfer-encoding'], undefined);
  });
});

describe('http mode: ready_path', () => {
  it('answers /_/ready 503 until the function is ready, then 200', async (t) => {
    const dir = makeTempDir();
    const readyFile = join(dir, 'ready');
    const watchdog = await startNodeFunction({ ready_path: '/ready', READY_FILE: readyFile });
    t.after(() => watchdog.stop());
    const notYet = await request(`${watchdog.url}/_/ready`);
    assert.equal(notYet.status, 503);
    // Health is about the watchdog and the process, not the function's own readiness.
    const health = await request(`${watchdog.url}/_/health`);
    assert.equal(health.status, 200);
    assert.equal(existsSync(readyFile), false);
    writeFileSync(readyFile, '');
    const ready = await request(`${watchdog.url}/_/ready`);
    assert.equal(ready.status, 200);
  });

  it('answers /_/ready 200 without ready_path', async (t) => {
    const watchdog = await startNodeFunction();
    t.after(() => watchdog.stop());
    const ready = await request(`${watchdog.url}/_/ready`);
    assert.equal(ready.status, 200);
  });
});

describe('http mode: python function', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    const port = await freePort();
    watchdog = await startWatchdog({
      mode: 'http',
      fprocess: fprocess('python3', fixture('python-http-server.py')),
      PORT: String(port),
      upstream_url: `http://127.0.0.1:${port}`,
    });
  });
  after(() => watchdog.stop());

  it('passes method, path and query through', async () => {
    const res = await request(`${watchdog.url}/py/path?x=1&y=2`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['x-duration-seconds']), /^\d+(\.\d+)?$/);
    assert.deepEqual(JSON.parse(res.text), {
      method: 'GET',
      path: '/py/path?x=1&y=2',
      body: '',
      lang: 'python',
    });
  });

  it('passes a body through', async () => {
    const res = await request(`${watchdog.url}/py`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: 'from the test',
    });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.text), {
      method: 'POST',
      path: '/py',
      body: 'from the test',
      lang: 'python',
    });
  });

  it("logs the function's stderr", async () => {
    await request(`${watchdog.url}/logged-path`);
    await waitFor(() => /stderr: request: .*logged-path/.test(watchdog.stderr), {
      what: "the python function's request log line",
    });
  });
});

describe('http mode: response framing and connection reuse', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    watchdog = await startNodeFunction();
  });
  after(() => watchdog.stop());

  it('answers HEAD, 204 and 304 without a body, and the next call on the pool still works', async () => {
    const head = await request(`${watchdog.url}/head`, { method: 'HEAD' });
    assert.equal(head.status, 201);
    assert.equal(head.body.length, 0);
    for (const status of [204, 304]) {
      const res = await request(`${watchdog.url}/status/${status}`);
      assert.equal(res.status, status);
      assert.equal(res.body.length, 0);
      assert.equal(res.headers['x-from'], 'function');
    }
    const next = await request(`${watchdog.url}/next`, { method: 'POST', body: 'next' });
    assert.equal(next.status, 201);
    const echo = JSON.parse(next.text) as Echo;
    assert.equal(echo.url, '/next');
    assert.equal(echo.body, 'next');
  });

  it('survives an answer that does not read the upload (418 to an 8 MB upload)', async () => {
    for (const contentLength of [false, true]) {
      const outcome = await streamingUpload(`${watchdog.url}/status/418`, {
        totalBytes: 8 * MB,
        contentLength,
      }).catch((error: NodeJS.ErrnoException) => error);
      if (outcome instanceof Error) {
        // Closing a connection whose upload is unread may reset it before the client has read
        // the answer: HTTP allows that, so only the watchdog's state is checked then.
        assert.match(String(outcome.code), /^(EPIPE|ECONNRESET)$/, outcome.message);
      } else {
        assert.equal(outcome.status, 418);
        assert.equal(outcome.receivedBytes, 'status'.length);
      }
    }
    await waitFor(
      async () => /^http_requests_in_flight 0$/m.test((await request(watchdog.metricsUrl)).text),
      { what: 'no call left in flight' },
    );
    const next = await request(`${watchdog.url}/next`);
    assert.equal(next.status, 201);
  });
});

describe('http mode: upstream edge cases (edge-http-server.cjs)', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    const port = await freePort();
    watchdog = await startWatchdog({
      mode: 'http',
      fprocess: fprocess('node', fixture('edge-http-server.cjs')),
      PORT: String(port),
      upstream_url: `http://127.0.0.1:${port}`,
    });
  });
  after(() => watchdog.stop());

  it('passes every Set-Cookie header back', async () => {
    const res = await request(`${watchdog.url}/cookies`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/']);
  });

  it('passes a response delimited by the connection closing back whole', async () => {
    const res = await request(`${watchdog.url}/until-close`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'until the end');
    const next = await request(`${watchdog.url}/next`);
    assert.equal(next.text, 'ok GET /next 0');
  });

  it('does not send a POST twice when the function drops the connection without answering', async () => {
    // A call first, so that the POST goes over a kept-alive connection.
    const warm = await request(`${watchdog.url}/warm`);
    assert.equal(warm.status, 200);
    const res = await request(`${watchdog.url}/drop`, { method: 'POST', body: 'side effect' });
    assert.ok(res.status >= 500, `answered ${res.status}`);
    assert.equal(res.headers[internal], 'fnbus-watchdog');
    const count = await request(`${watchdog.url}/count`);
    assert.deepEqual(
      JSON.parse(count.text),
      { drops: 1 },
      'the function received the POST more than once',
    );
  });
});
