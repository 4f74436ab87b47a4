import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { request } from '../helpers/http.js';
import {
  fixture,
  fprocess,
  makeTempDir,
  startWatchdog,
  type RunningWatchdog,
} from '../helpers/watchdog.js';

const internal = 'x-openfaas-internal';
/** Go's log prefix, as the watchdog writes it before each function line: `2026/01/02 15:04:05`. */
const goTimestamp = String.raw`\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}`;

function assertDurationHeader(value: string | string[] | undefined): void {
  assert.equal(typeof value, 'string', 'X-Duration-Seconds is missing');
  assert.match(value as string, /^\d+(\.\d+)?$/);
  assert.ok(Number.isFinite(Number(value)));
}

describe('fork mode (mode unset): sha512sum', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    watchdog = await startWatchdog({ fprocess: 'sha512sum' });
  });
  after(() => watchdog.stop());

  it('answers a POST with the SHA-512 of its body', async () => {
    const body = Buffer.from(`fnbus ${Math.random()}\n\u00e9\u0000binary`);
    const res = await request(`${watchdog.url}/`, { method: 'POST', body });
    assert.equal(res.status, 200);
    const expected = createHash('sha512').update(body).digest('hex');
    assert.equal(res.text.split(/\s/)[0], expected);
  });

  it('sets a numeric X-Duration-Seconds', async () => {
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 200);
    assertDurationHeader(res.headers['x-duration-seconds']);
  });

  it('runs the process for GET, POST, PUT, PATCH and DELETE', async () => {
    const empty = createHash('sha512').update('').digest('hex');
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
      const res = await request(`${watchdog.url}/`, { method });
      assert.equal(res.status, 200, `${method} → ${res.status} ${res.text}`);
      assert.equal(res.text.split(/\s/)[0], empty, method);
    }
  });

  it('refuses other methods with 405', async () => {
    for (const method of ['OPTIONS', 'PROPFIND']) {
      const res = await request(`${watchdog.url}/`, { method });
      assert.equal(res.status, 405, method);
    }
  });
});

describe('fork mode: cat', () => {
  let watchdog: RunningWatchdog;
  before(async () => {
    watchdog = await startWatchdog({ fprocess: 'cat' });
  });
  after(() => watchdog.stop());

  it('echoes the body', async () => {
    const body = Buffer.from([0, 1, 2, 255, 254, 10, 13, 65]);
    const res = await request(`${watchdog.url}/any/path?x=1`, { method: 'POST', body });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, body);
  });

  it("echoes the request's Content-Type", async () => {
    const res = await request(`${watchdog.url}/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-fnbus-test; charset=latin1' },
      body: 'hello',
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/x-fnbus-test; charset=latin1');
    assert.equal(res.text, 'hello');
  });
});

describe('fork mode: content_type', () => {
  it('forces the response Content-Type when set', async (t) => {
    const watchdog = await startWatchdog({ fprocess: 'cat', content_type: 'text/x-forced' });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/x-forced');
    assert.equal(res.text, '{}');
  });
});

describe('fork mode: stderr', () => {
  it('puts stderr in the body by default (combine_output=true)', async (t) => {
    const watchdog = await startWatchdog({ fprocess: fixture('stderr.sh') });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 200);
    assert.match(res.text, /first error line\n/);
    assert.match(res.text, /second error line\n/);
    assert.match(res.text, /the answer\n/);
    assert.doesNotMatch(watchdog.stderr, /first error line/);
  });

  it('logs stderr with a date and "stderr:" prefix when combine_output=false', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: fixture('stderr.sh'),
      combine_output: 'false',
    });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'the answer\n');
    await watchdog.waitForStderr(/second error line/);
    assert.match(watchdog.stderr, new RegExp(`^${goTimestamp} stderr: first error line$`, 'm'));
    assert.match(watchdog.stderr, new RegExp(`^${goTimestamp} stderr: second error line$`, 'm'));
  });

  it('logs stderr lines bare with prefix_logs=false', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: fixture('stderr.sh'),
      combine_output: 'false',
      prefix_logs: 'false',
    });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'the answer\n');
    await watchdog.waitForStderr(/second error line/);
    assert.match(watchdog.stderr, /^first error line$/m);
    assert.match(watchdog.stderr, /^second error line$/m);
    assert.doesNotMatch(watchdog.stderr, /stderr: first error line/);
  });
});

describe('fork mode: failing functions', () => {
  it('answers 500 "exit status 1" for a non-zero exit, not marked internal', async (t) => {
    const watchdog = await startWatchdog({ fprocess: fixture('exit-1.sh') });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 500);
    assert.ok(res.text.startsWith('exit status 1'), res.text);
    // combine_output is on: the function's own output follows the reason.
    assert.match(res.text, /something went wrong/);
    assert.match(res.text, /stdout before failing/);
    assert.equal(res.headers[internal], undefined);
  });

  it('answers 500 "signal: SIGSEGV" for a process killed by a signal', async (t) => {
    const watchdog = await startWatchdog({ fprocess: fixture('crash.sh') });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 500);
    assert.match(res.text, /signal: SIGSEGV/);
  });

  it('answers 500 marked internal when the command does not exist, stays up, not healthy', async (t) => {
    const watchdog = await startWatchdog({ fprocess: '/nonexistent/fnbus-no-such-command arg' });
    t.after(() => watchdog.stop());
    for (let i = 0; i < 2; i++) {
      const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'x' });
      assert.equal(res.status, 500);
      assert.equal(res.headers[internal], 'fnbus-watchdog');
      assert.match(res.text, /fnbus-no-such-command/);
    }
    // Not ready while no call can succeed, and the log says why (once, before any call).
    const health = await request(`${watchdog.url}/_/health`);
    assert.equal(health.status, 503);
    assert.equal(watchdog.hasExited, false);
    const reasons = watchdog
      .logLines()
      .filter((line) => line.msg === 'cannot start the function process');
    assert.equal(reasons.length, 1, watchdog.stderr);
    assert.equal(reasons[0]?.reason, 'no such executable file');
  });

  it('is not healthy when the command is not in PATH, and says so', async (t) => {
    const bin = makeTempDir('fnbus-fork-path-');
    const watchdog = await startWatchdog({
      fprocess: 'fnbus-nowhere',
      PATH: `${bin}:/usr/bin:/bin`,
    });
    t.after(() => watchdog.stop());
    assert.equal((await request(`${watchdog.url}/_/health`)).status, 503);
    assert.match(
      watchdog.stderr,
      /"reason":"not found in PATH".*cannot start the function process/,
    );
  });
});

describe('fork mode: the log of each call, as the classic watchdog writes it', () => {
  it('logs "Forking fprocess." and "Wrote N Bytes - Duration: X.XXXXXXs"', async (t) => {
    const watchdog = await startWatchdog({ fprocess: 'cat' });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: 'hello' });
    assert.equal(res.status, 200);
    await watchdog.waitForStderr(/Wrote 5 Bytes/);
    assert.match(watchdog.stderr, new RegExp(`^${goTimestamp} Forking fprocess\\.$`, 'm'));
    assert.match(
      watchdog.stderr,
      new RegExp(`^${goTimestamp} Wrote 5 Bytes - Duration: \\d+\\.\\d{6}s$`, 'm'),
    );
  });

  it('logs a failure with its exit status and output, and a kill at the deadline', async (t) => {
    const watchdog = await startWatchdog({ fprocess: fixture('exit-1.sh') });
    t.after(() => watchdog.stop());
    assert.equal((await request(`${watchdog.url}/`, { method: 'POST', body: 'x' })).status, 500);
    await watchdog.waitForStderr(/Out=/);
    assert.match(
      watchdog.stderr,
      new RegExp(`^${goTimestamp} Success=false, Error=exit status 1$`, 'm'),
    );
    assert.match(watchdog.stderr, new RegExp(`^${goTimestamp} Out=.*something went wrong`, 'm'));
    assert.doesNotMatch(watchdog.stderr, /Wrote \d+ Bytes/);

    const slow = await startWatchdog({ fprocess: 'sleep 5', exec_timeout: '200ms' });
    t.after(() => slow.stop());
    assert.equal((await request(`${slow.url}/`, { method: 'POST' })).status, 408);
    await slow.waitForStderr(new RegExp(`^${goTimestamp} Killing process: sleep 5$`, 'm'));
  });
});

describe('fork mode: marshal_request', () => {
  it('gives the process {"header":{...},"body":{"raw":"<base64>"}} on stdin', async (t) => {
    const watchdog = await startWatchdog({ fprocess: 'cat', marshal_request: 'true' });
    t.after(() => watchdog.stop());
    const body = Buffer.from([1, 2, 3, 250, 251, 0, 104, 105]);
    const res = await request(`${watchdog.url}/path?q=1`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-test',
        'x-custom-header': ['first', 'second'],
      },
      body,
    });
    assert.equal(res.status, 200);
    const marshalled = JSON.parse(res.text) as {
      header: Record<string, string[]>;
      body: { raw: string };
    };
    assert.deepEqual(Object.keys(marshalled).sort(), ['body', 'header']);
    assert.deepEqual(marshalled.header['Content-Type'], ['application/x-test']);
    assert.deepEqual(marshalled.header['X-Custom-Header'], ['first', 'second']);
    assert.deepEqual(marshalled.header['Content-Length'], [String(body.length)]);
    for (const [name, values] of Object.entries(marshalled.header)) {
      // Go's canonical form: each dash-separated word capitalised.
      assert.match(name, /^[A-Z][a-z0-9]*(-[A-Z0-9][a-z0-9]*)*$/, name);
      assert.ok(Array.isArray(values), name);
    }
    assert.deepEqual(Buffer.from(marshalled.body.raw, 'base64'), body);
  });
});

describe('fork mode: write_debug', () => {
  it('logs the output of each call', async (t) => {
    const watchdog = await startWatchdog({ fprocess: 'cat', write_debug: 'true' });
    t.after(() => watchdog.stop());
    const marker = `debug-marker-${Math.random().toString(36).slice(2)}`;
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: marker });
    assert.equal(res.status, 200);
    assert.equal(res.text, marker);
    await watchdog.waitForStderr(new RegExp(marker));
  });

  it('does not log the output without it', async (t) => {
    const watchdog = await startWatchdog({ fprocess: 'cat' });
    t.after(() => watchdog.stop());
    const marker = `quiet-marker-${Math.random().toString(36).slice(2)}`;
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: marker });
    assert.equal(res.text, marker);
    assert.doesNotMatch(watchdog.stderr, new RegExp(marker));
  });
});

describe('fprocess splitting', () => {
  it('passes quoted arguments as separate words, without a shell', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: `sh -c 'printf "[%s]" "$0" "$@"' "a b" c`,
    });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: '' });
    assert.equal(res.status, 200);
    assert.equal(res.text, '[a b][c]');
  });

  it('leaves $VARIABLES and globs alone, as no shell expands them', async (t) => {
    const watchdog = await startWatchdog({ fprocess: 'printf [%s] $HOME *' });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: '' });
    assert.equal(res.status, 200);
    assert.equal(res.text, '[$HOME][*]');
  });

  it('prefers function_process over fprocess', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: 'echo from-fprocess',
      function_process: fprocess('echo', 'from function_process'),
    });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST', body: '' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'from function_process\n');
  });
});

describe('fork mode: bodies held in memory are bounded', () => {
  it('kills a process whose output passes max_response_bytes and answers 502, marked internal', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: 'head -c 100000 /dev/zero',
      max_response_bytes: '65536',
    });
    t.after(() => watchdog.stop());
    const res = await request(`${watchdog.url}/`, { method: 'POST' });
    assert.equal(res.status, 502);
    assert.equal(res.headers[internal], 'fnbus-watchdog');
    assert.match(res.text, /max_response_bytes \(65536\).*mode=streaming/);
    // Up to the cap, the output is the answer.
    const small = await startWatchdog({
      fprocess: 'head -c 65536 /dev/zero',
      max_response_bytes: '65536',
    });
    t.after(() => small.stop());
    const whole = await request(`${small.url}/`, { method: 'POST' });
    assert.equal(whole.status, 200);
    assert.equal(whole.body.length, 65536);
  });

  it('kills the process as soon as its output passes the cap, even in its first write', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: fprocess('sh', '-c', 'echo over; exec sleep 20'),
      max_response_bytes: '1',
    });
    t.after(() => watchdog.stop());
    const started = Date.now();
    const res = await request(`${watchdog.url}/`, { method: 'POST', timeoutMs: 15_000 });
    assert.equal(res.status, 502);
    assert.ok(Date.now() - started < 10_000, 'answered without waiting for the process to end');
  });

  it('answers 413 past max_request_bytes where the body is read whole (marshal_request)', async (t) => {
    const watchdog = await startWatchdog({
      fprocess: 'cat',
      marshal_request: 'true',
      max_request_bytes: '1000',
    });
    t.after(() => watchdog.stop());
    const declared = await request(`${watchdog.url}/`, {
      method: 'POST',
      body: Buffer.alloc(1001),
    });
    assert.equal(declared.status, 413);
    assert.equal(declared.headers[internal], 'fnbus-watchdog');
    assert.match(declared.text, /max_request_bytes \(1000\)/);
    const chunked = await request(`${watchdog.url}/`, {
      method: 'POST',
      headers: { 'Transfer-Encoding': 'chunked' },
      body: Buffer.alloc(5000),
    });
    assert.equal(chunked.status, 413);
    const fits = await request(`${watchdog.url}/`, { method: 'POST', body: Buffer.alloc(1000) });
    assert.equal(fits.status, 200);
  });
});
