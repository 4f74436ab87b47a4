import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { openRequest, request } from '../helpers/http.js';
import { groupMembers, isGone } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';
import {
  fixture,
  startNodeFunction,
  startWatchdog,
  type RunningWatchdog,
} from '../helpers/watchdog.js';

const internal = 'x-openfaas-internal';

/** The pid slow.sh logged (`pid N` on its stderr, which combine_output=false sends to the log). */
async function slowPid(watchdog: RunningWatchdog): Promise<number> {
  const match = await watchdog.waitForStderr(/stderr: pid (\d+)$/m);
  return Number(match[1]);
}

/**
 * Sends a request's headers promising `declaredLength` bytes of body, sends `sent` of them and
 * stalls; resolves with what the server wrote back before closing, and how long it took.
 */
function stallBody(
  port: number,
  declaredLength: number,
  sent: string,
): Promise<{ response: string; elapsedMs: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ port, host: '127.0.0.1' });
    let response = '';
    socket.setEncoding('utf8');
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10s')));
    socket.on('data', (text: string) => (response += text));
    socket.once('error', reject);
    socket.once('close', () => resolve({ response, elapsedMs: performance.now() - started }));
    socket.once('connect', () => {
      socket.write(
        `POST / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: text/plain\r\n` +
          `Content-Length: ${declaredLength}\r\n\r\n${sent}`,
      );
    });
  });
}

describe('fork mode: exec_timeout', () => {
  it('kills the process and answers 408 "Killed process." marked internal', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: fixture('slow.sh'),
      SLOW_SECONDS: '5',
      exec_timeout: '300ms',
      combine_output: 'false',
    });
    t.after(() => watchdog.stop());
    const started = performance.now();
    const call = request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    const pid = await slowPid(watchdog);
    assert.equal(isGone(pid), false, 'slow.sh should be running while the call is in flight');
    await waitFor(() => groupMembers(pid).length === 2, { what: 'slow.sh to start its sleep' });
    const res = await call;
    const elapsed = performance.now() - started;
    assert.equal(res.status, 408);
    assert.equal(res.text.trim(), 'Killed process.');
    assert.equal(res.headers[internal], 'fnbus-watchdog');
    assert.ok(elapsed >= 250 && elapsed < 2000, `answered after ${elapsed}ms`);
    await waitFor(() => isGone(pid), { timeoutMs: 2000, what: `pid ${pid} to be gone` });
    // What the process started (its `sleep`) is killed with it.
    await waitFor(() => groupMembers(pid).length === 0, {
      timeoutMs: 2000,
      what: `the processes of group ${pid} to be gone`,
    });
  });

  it('is shortened by X-Timeout', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: fixture('slow.sh'),
      SLOW_SECONDS: '5',
      exec_timeout: '10s',
    });
    t.after(() => watchdog.stop());
    const started = performance.now();
    const res = await request(`${watchdog.url}/`, {
      method: 'POST',
      body: 'x',
      headers: { 'X-Timeout': '300ms' },
    });
    const elapsed = performance.now() - started;
    assert.equal(res.status, 408);
    assert.ok(elapsed >= 250 && elapsed < 2000, `answered after ${elapsed}ms`);
  });

  it('lets a call that finishes in time answer 200', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: fixture('slow.sh'),
      SLOW_SECONDS: '0',
      exec_timeout: '5s',
      combine_output: 'false',
    });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'done\n');
  });
});

describe('fork mode: write_timeout', () => {
  it('bounds the call when shorter than exec_timeout', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: fixture('slow.sh'),
      SLOW_SECONDS: '5',
      exec_timeout: '10s',
      write_timeout: '300ms',
      combine_output: 'false',
    });
    t.after(() => watchdog.stop());
    const started = performance.now();
    const call = request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    const pid = await slowPid(watchdog);
    const res = await call;
    const elapsed = performance.now() - started;
    assert.equal(res.status, 408);
    assert.equal(res.headers[internal], 'fnbus-watchdog');
    assert.ok(elapsed >= 250 && elapsed < 2000, `answered after ${elapsed}ms`);
    await waitFor(() => isGone(pid), { timeoutMs: 2000, what: `pid ${pid} to be gone` });
  });
});

describe('streaming mode: exec_timeout', () => {
  it('answers 408 when the process produced no output in time, and kills it', async (t) => {
    const watchdog = await startWatchdog({
      mode: 'streaming',
      fprocess: fixture('slow.sh'),
      SLOW_SECONDS: '5',
      exec_timeout: '300ms',
    });
    t.after(() => watchdog.stop());
    const call = request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    const pid = await slowPid(watchdog);
    const res = await call;
    assert.equal(res.status, 408);
    assert.equal(res.headers[internal], 'fnbus-watchdog');
    await waitFor(() => isGone(pid), { timeoutMs: 2000, what: `pid ${pid} to be gone` });
  });
});

describe('read_timeout', () => {
  it('answers 408 to a client that stalls its body, within about read_timeout', async (t) => {
    const watchdog = await startWatchdog({ fprocess: 'cat', read_timeout: '500ms' });
    t.after(() => watchdog.stop());
    const { response, elapsedMs } = await stallBody(watchdog.port, 100, 'only a part');
    assert.match(response, /^HTTP\/1\.1 408 /);
    assert.ok(elapsedMs >= 400 && elapsedMs < 2000, `answered after ${elapsedMs}ms`);
    // The watchdog is still fine.
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'after' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'after');
  });

  it('kills the process of a call whose body stalled', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: fixture('slow.sh'),
      SLOW_SECONDS: '5',
      read_timeout: '500ms',
      combine_output: 'false',
    });
    t.after(() => watchdog.stop());
    const stalled = stallBody(watchdog.port, 100, 'part');
    const pid = await slowPid(watchdog);
    const { response } = await stalled;
    assert.match(response, /^HTTP\/1\.1 408 /);
    await waitFor(() => isGone(pid), { timeoutMs: 2000, what: `pid ${pid} to be gone` });
  });

  it('answers 408 in http mode too', async (t) => {
    const watchdog = await startNodeFunction({ read_timeout: '500ms' });
    t.after(() => watchdog.stop());
    const { response, elapsedMs } = await stallBody(watchdog.port, 100, 'only a part');
    assert.match(response, /^HTTP\/1\.1 408 /);
    assert.ok(elapsedMs >= 400 && elapsedMs < 2000, `answered after ${elapsedMs}ms`);
  });
});

describe('http mode: exec_timeout while the request body is still arriving', () => {
  /** A client that sends half of a small body, then the rest `delayMs` later (a slow upload). */
  async function slowUpload(url: string, delayMs: number, timeoutMs: number) {
    const started = performance.now();
    const call = openRequest(url, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain', 'Content-Length': 6 },
      timeoutMs,
    });
    call.req.write('abc');
    // The client's slowness is the scenario here, not a wait for the server.
    await sleep(delayMs);
    call.req.end('def');
    const outcome = await call.response.then(
      (res) => ({ res, error: undefined }),
      (error: unknown) => ({ res: undefined, error }),
    );
    return { ...outcome, elapsedMs: performance.now() - started };
  }

  it('still bounds the call (504 at about exec_timeout)', async (t) => {
    const watchdog = await startNodeFunction({ exec_timeout: '300ms' });
    t.after(() => watchdog.stop());
    const { res, error, elapsedMs } = await slowUpload(`${watchdog.url}/?ms=1500`, 600, 5000);
    assert.equal(error, undefined);
    assert.equal(res?.status, 504, `answered ${res?.status} after ${elapsedMs}ms: ${res?.text}`);
    assert.ok(elapsedMs < 1200, `answered after ${elapsedMs}ms`);
  });

  it('still answers the call when the function then fails', async (t) => {
    const watchdog = await startNodeFunction({ exec_timeout: '300ms' });
    t.after(() => watchdog.stop());
    const { res, error, elapsedMs } = await slowUpload(`${watchdog.url}/crash`, 600, 2000);
    assert.equal(error, undefined, `no answer within 2s (${elapsedMs}ms): ${String(error)}`);
    assert.ok(res && res.status >= 500, `answered ${res?.status}`);
  });
});
