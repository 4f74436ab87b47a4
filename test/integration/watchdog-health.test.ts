import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { openRequest, request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { runWatchdogCli, startWatchdog, type RunningWatchdog } from '../helpers/watchdog.js';

describe('health and the lock file', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    watchdog = await startWatchdog({ fprocess: 'cat' });
  });
  after(() => watchdog.stop());

  it('answers /_/health 200 "OK" once ready, with $TMPDIR/.lock present', async () => {
    assert.ok(existsSync(watchdog.lockPath), `${watchdog.lockPath} is missing`);
    const res = await request(`${watchdog.url}/_/health`);
    assert.equal(res.status, 200);
    assert.equal(res.text, 'OK');
    const head = await request(`${watchdog.url}/_/health`, { method: 'HEAD' });
    assert.equal(head.status, 200);
  });

  it('answers /_/ready 200 when idle', async () => {
    const res = await request(`${watchdog.url}/_/ready`);
    assert.equal(res.status, 200);
  });

  it('refuses methods other than GET on /_/health with 405', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await request(`${watchdog.url}/_/health`, { method, body: '' });
      assert.equal(res.status, 405, method);
    }
  });

  it('answers 503 while the lock file is missing, 200 once it is back', async () => {
    rmSync(watchdog.lockPath);
    const gone = await request(`${watchdog.url}/_/health`);
    assert.equal(gone.status, 503);
    const notReady = await request(`${watchdog.url}/_/ready`);
    assert.equal(notReady.status, 503);
    writeFileSync(watchdog.lockPath, '');
    const back = await request(`${watchdog.url}/_/health`);
    assert.equal(back.status, 200);
  });
});

describe('suppress_lock', () => {
  it('writes no lock file and still answers /_/health 200', async (t) => {
    const watchdog = await startWatchdog({ fprocess: 'cat', suppress_lock: 'true' });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/_/health`);
    assert.equal(res.status, 200);
    assert.equal(existsSync(watchdog.lockPath), false);
    const call = await request(`${watchdog.url}/`, { method: 'POST', body: 'works' });
    assert.equal(call.text, 'works');
  });
});

describe('--run-healthcheck', () => {
  it('exits 0 while a watchdog runs (same TMPDIR), 1 once it has stopped', async () => {
    const watchdog = await startWatchdog({ fprocess: 'cat' });
    try {
      const running = await runWatchdogCli({ TMPDIR: watchdog.tmpdir }, ['--run-healthcheck']);
      assert.equal(running.code, 0, running.stderr);
    } finally {
      const exit = await watchdog.stop();
      assert.equal(exit.code, 0);
    }
    assert.equal(existsSync(watchdog.lockPath), false);
    const stopped = await runWatchdogCli({ TMPDIR: watchdog.tmpdir }, ['--run-healthcheck']);
    assert.equal(stopped.code, 1);
  });
});

describe('max_inflight=1', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    watchdog = await startWatchdog({ fprocess: 'cat', max_inflight: '1' });
  });
  after(() => watchdog.stop());

  it('answers a second concurrent call 429, and /_/ready 429 while saturated', async () => {
    // cat answers only once the body ends: the first call stays in flight until then.
    const first = openRequest(`${watchdog.url}/`, { method: 'POST' });
    first.req.write('first ');
    await waitFor(
      async () => (await request(`${watchdog.url}/_/ready`)).status === 429 || undefined,
      { what: '/_/ready to answer 429 while a call is in flight' },
    );

    const second = await request(`${watchdog.url}/`, { method: 'POST', body: 'second' });
    assert.equal(second.status, 429);
    assert.match(String(second.headers['content-type']), /^text\/plain/);
    assert.equal(second.headers['x-openfaas-internal'], 'fnbus-watchdog');
    assert.equal(
      second.text.trim(),
      'Concurrent request limit exceeded. Max concurrent requests: 1',
    );

    const health = await request(`${watchdog.url}/_/health`);
    assert.equal(health.status, 200, 'health must not depend on the load');

    const metrics = await request(watchdog.metricsUrl);
    assert.match(metrics.text, /^http_requests_in_flight 1$/m);

    first.req.end('call');
    const res = await first.response;
    assert.equal(res.status, 200);
    assert.equal(res.text, 'first call');

    await waitFor(
      async () => (await request(`${watchdog.url}/_/ready`)).status === 200 || undefined,
      { what: '/_/ready to answer 200 again' },
    );
    const third = await request(`${watchdog.url}/`, { method: 'POST', body: 'third' });
    assert.equal(third.status, 200);
    assert.equal(third.text, 'third');
  });
});

describe('metrics', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    watchdog = await startWatchdog({ fprocess: 'cat' });
  });
  after(() => watchdog.stop());

  it('counts calls by code and method on the metrics port', async () => {
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'count me' });
    assert.equal(res.status, 200);
    const notAllowed = await request(`${watchdog.url}/`, { method: 'OPTIONS' });
    assert.equal(notAllowed.status, 405);

    const text = await waitFor(
      async () => {
        const metrics = await request(watchdog.metricsUrl);
        assert.equal(metrics.status, 200);
        return /^http_requests_total\{code="405",method="options"\} 1$/m.test(metrics.text)
          ? metrics.text
          : undefined;
      },
      { what: 'the calls to show in the metrics' },
    );
    assert.match(text, /^http_requests_total\{code="200",method="post"\} 1$/m);
    assert.match(
      text,
      /^http_request_duration_seconds_bucket\{(?=[^}]*code="200")(?=[^}]*method="post")[^}]*le="\+Inf"[^}]*\} 1$/m,
    );
    assert.match(text, /^http_request_duration_seconds_count\{code="200",method="post"\} 1$/m);
    assert.match(text, /^http_requests_in_flight 0$/m);
    assert.match(text, /^# TYPE http_request_duration_seconds histogram$/m);
  });

  it('answers 404 for other paths on the metrics port', async () => {
    const res = await request(`http://127.0.0.1:${watchdog.metricsPort}/other`);
    assert.equal(res.status, 404);
  });
});
