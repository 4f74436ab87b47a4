import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';

import { freePort, request, tryConnect, type HttpResult } from '../helpers/http.js';
import { isGone } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';
import { fixture, startNodeFunction, startWatchdog } from '../helpers/watchdog.js';

/** A call whose settling the test can look at while it is in flight. */
function track(response: Promise<HttpResult>): {
  response: Promise<HttpResult>;
  settled: () => boolean;
} {
  let settled = false;
  const tracked = response.finally(() => (settled = true));
  tracked.catch(() => {});
  return { response: tracked, settled: () => settled };
}

describe('SIGTERM: draining', () => {
  it('fork mode: drops the lock, refuses new connections, finishes calls in flight, exits 0', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: fixture('slow.sh'),
      SLOW_SECONDS: '1',
      combine_output: 'false',
    });
    t.after(() => watchdog.stop());
    assert.ok(existsSync(watchdog.lockPath));

    const calls = [0, 1].map(() =>
      track(request(`${watchdog.url}/`, { method: 'POST', body: 'x' })),
    );
    // Both processes have started (each slow.sh logs its pid): both calls are in flight.
    await waitFor(() => (watchdog.stderr.match(/stderr: pid \d+/g) ?? []).length === 2, {
      what: 'both slow.sh processes to start',
    });

    watchdog.signal('SIGTERM');
    await waitFor(() => !existsSync(watchdog.lockPath), {
      timeoutMs: 500,
      what: 'the lock file to be removed',
    });
    assert.ok(
      calls.every((call) => !call.settled()),
      'the lock should go before the calls in flight finish',
    );

    await waitFor(async () => (await tryConnect(watchdog.port)) === 'ECONNREFUSED', {
      timeoutMs: 500,
      what: 'new connections to be refused',
    });
    assert.ok(
      calls.every((call) => !call.settled()),
      'new connections should be refused while the calls in flight still run',
    );

    for (const call of calls) {
      const res = await call.response;
      assert.equal(res.status, 200);
      assert.equal(res.text, 'done\n');
    }
    const exit = await watchdog.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(existsSync(watchdog.lockPath), false);
  });

  it('http mode: finishes the call in flight, then stops the function with SIGTERM, exits 0', async (t) => {
    const port = await freePort();
    const watchdog = await startNodeFunction({
      PORT: String(port),
      upstream_url: `http://127.0.0.1:${port}`,
    });
    t.after(() => watchdog.stop());
    await watchdog.waitForStdout(/listening on \d+/);

    const call = track(request(`${watchdog.url}/slow?ms=1000`, { method: 'POST', body: 'slow' }));
    await waitFor(
      async () => /^http_requests_in_flight 1$/m.test((await request(watchdog.metricsUrl)).text),
      { what: 'the slow call to be in flight' },
    );

    watchdog.signal('SIGTERM');
    await waitFor(() => !existsSync(watchdog.lockPath), {
      timeoutMs: 500,
      what: 'the lock file to be removed',
    });
    await waitFor(async () => (await tryConnect(watchdog.port)) === 'ECONNREFUSED', {
      timeoutMs: 500,
      what: 'new connections to be refused',
    });
    assert.equal(call.settled(), false, 'the slow call should still be in flight');

    const res = await call.response;
    assert.equal(res.status, 201);
    assert.equal((JSON.parse(res.text) as { body: string }).body, 'slow');

    const exit = await watchdog.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(watchdog.stdout, /got SIGTERM/);
    // The function process is gone with it: its port is free again.
    await waitFor(async () => (await tryConnect(port)) === 'ECONNREFUSED', {
      what: "the function's port to close",
    });
  });

  it('keeps serving calls during healthcheck_interval while /_/health says 503', async (t) => {
    const watchdog = await startWatchdog({ fprocess: 'cat', healthcheck_interval: '1s' });
    t.after(() => watchdog.stop());
    const started = performance.now();
    watchdog.signal('SIGTERM');
    await waitFor(() => !existsSync(watchdog.lockPath), {
      timeoutMs: 500,
      what: 'the lock file to be removed',
    });
    const health = await request(`${watchdog.url}/_/health`);
    assert.equal(health.status, 503);
    const call = await request(`${watchdog.url}/`, { method: 'POST', body: 'still here' });
    assert.equal(call.status, 200);
    assert.equal(call.text, 'still here');
    assert.ok(performance.now() - started < 900, 'the checks above should fit in the interval');
    const exit = await watchdog.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(performance.now() - started >= 900, 'the watchdog should wait out the interval');
  });

  it('exits 0 promptly when idle', async () => {
    const watchdog = await startWatchdog({ fprocess: 'cat' });
    const started = performance.now();
    const exit = await watchdog.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(performance.now() - started < 2000);
    assert.equal(existsSync(watchdog.lockPath), false);
  });
});

describe('http mode: a function that never listens', () => {
  it('answers /_/health 503 and calls 503, and SIGTERM still ends it and its process', async (t) => {
    const port = await freePort();
    const upstreamPort = await freePort();
    const watchdog = await startWatchdog(
      {
        mode: 'http',
        port: String(port),
        fprocess: 'sleep 30',
        upstream_url: `http://127.0.0.1:${upstreamPort}`,
      },
      { waitUntilReady: false },
    );
    t.after(() => watchdog.stop());
    const started = await waitFor(
      () => watchdog.logLines().find((line) => line.msg === 'started function process'),
      { what: 'the function process to start' },
    );
    const pid = Number(started.pid);
    const health = await request(`${watchdog.url}/_/health`);
    assert.equal(health.status, 503);
    const call = await request(`${watchdog.url}/`);
    assert.equal(call.status, 503);
    assert.equal(call.headers['x-openfaas-internal'], 'fnbus-watchdog');
    assert.equal(existsSync(watchdog.lockPath), false, 'no lock file before the function is up');

    const exit = await watchdog.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    await waitFor(() => isGone(pid), { what: `the function process ${pid} to be gone` });
  });
});

describe('http mode: the function process dies', () => {
  it('reports unhealthy while it is down, restarts it, and serves again', async (t) => {
    const watchdog = await startNodeFunction();
    t.after(() => watchdog.stop());
    const before = await request(`${watchdog.url}/before`);
    assert.equal(before.status, 201);

    const crash = await request(`${watchdog.url}/crash`);
    assert.ok(crash.status >= 500, `/crash answered ${crash.status}`);
    assert.equal(crash.headers['x-openfaas-internal'], 'fnbus-watchdog');

    await waitFor(
      async () => (await request(`${watchdog.url}/_/health`)).status === 503 || undefined,
      { intervalMs: 2, what: '/_/health to answer 503 while the function is down' },
    );
    await waitFor(
      async () => (await request(`${watchdog.url}/_/health`)).status === 200 || undefined,
      { what: '/_/health to answer 200 after the restart' },
    );
    assert.match(watchdog.stderr, /crashing on request/);
    assert.ok(
      watchdog.logLines().some((line) => line.msg === 'function process exited; restarting'),
      'the restart should be logged',
    );

    const after = await request(`${watchdog.url}/after`, { method: 'POST', body: 'again' });
    assert.equal(after.status, 201);
    assert.equal((JSON.parse(after.text) as { body: string }).body, 'again');
    assert.equal(watchdog.hasExited, false);
  });
});
