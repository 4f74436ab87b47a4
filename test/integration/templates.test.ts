import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { freePort, request, tryConnect } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import {
  fprocess,
  makeTempDir,
  startWatchdog,
  type Exit,
  type RunningWatchdog,
} from '../helpers/watchdog.js';

/** The repository root: this file is dist/test/integration/templates.test.js once built. */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const nodeRunner = join(repoRoot, 'templates', 'node', 'index.js');
const pythonRunner = join(repoRoot, 'templates', 'python3', 'index.py');
const functions = join(repoRoot, 'test', 'fixtures', 'functions');
const KB = 1024;

/** What the fixture handlers answer on any path they do not know. */
interface Echo {
  kind: string;
  body: unknown;
  method: string;
  query: Record<string, string | string[]>;
  path: string;
  header: string | null;
  statusBefore: number;
}

/** A template runner as a real child process on a port of its own. */
class Runner {
  readonly exited: Promise<Exit>;
  stdout = '';
  stderr = '';

  constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (text: string) => (this.stdout += text));
    child.stderr?.setEncoding('utf8').on('data', (text: string) => (this.stderr += text));
    this.exited = new Promise((resolve) =>
      child.once('close', (code, signal) => resolve({ code, signal })),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

const runners = new Set<Runner>();
after(() => Promise.all([...runners].map((runner) => runner.stop())));

async function startRunner(command: string[], env: Record<string, string>): Promise<Runner> {
  const port = await freePort();
  const [file, ...args] = command;
  assert.ok(file);
  const child = spawn(file, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const runner = new Runner(child, port);
  runners.add(runner);
  let exit: Exit | undefined;
  void runner.exited.then((value) => (exit = value));
  await waitFor(
    async () => {
      if (exit) throw new Error(`exited ${JSON.stringify(exit)}: ${runner.stderr}`);
      return (await tryConnect(port)) === 'connected';
    },
    { timeoutMs: 10_000, what: `${command.join(' ')} to listen on ${port}` },
  ).catch(async (error: unknown) => {
    await runner.stop();
    throw new Error(`${String(error)}\nstderr:\n${runner.stderr}`);
  });
  return runner;
}

const startNode = (handler: string, env: Record<string, string> = {}): Promise<Runner> =>
  startRunner([process.execPath, nodeRunner], { handler_path: join(functions, handler), ...env });
const startPython = (env: Record<string, string> = {}): Promise<Runner> =>
  startRunner(['python3', pythonRunner], { handler_path: join(functions, 'python'), ...env });

const json = (value: unknown): { headers: Record<string, string>; body: string } => ({
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify(value),
});

/** The contract both templates keep, checked against a running function at `url()`. */
function contractSuite(kind: string, url: () => string): void {
  it('parses a JSON body and answers an object as JSON; query, path, headers reach the event', async () => {
    const res = await request(`${url()}/some/path?a=1&a=2&b=two%20words`, {
      method: 'POST',
      ...json({ hello: 'world', n: [1, 2] }),
      headers: { 'Content-Type': 'application/json', 'X-Test': 'yes' },
    });
    assert.equal(res.status, 200, res.text);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const echo = JSON.parse(res.text) as Echo;
    assert.equal(echo.kind, kind);
    assert.deepEqual(echo.body, { hello: 'world', n: [1, 2] });
    assert.equal(echo.method, 'POST');
    assert.deepEqual(echo.query, { a: ['1', '2'], b: 'two words' });
    assert.equal(echo.path, '/some/path');
    assert.equal(echo.header, 'yes');
    assert.equal(echo.statusBefore, 200);
  });

  it('gives a text body as a string and answers a string as text', async () => {
    const echoed = await request(`${url()}/`, {
      method: 'PUT',
      headers: { 'Content-Type': 'text/plain' },
      body: 'plain words',
    });
    assert.equal((JSON.parse(echoed.text) as Echo).body, 'plain words');
    const res = await request(`${url()}/text?name=fnbus`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.equal(res.text, 'hello fnbus');
  });

  it('sends the status and headers the handler set on its context', async () => {
    const res = await request(`${url()}/status`);
    assert.equal(res.status, 201);
    assert.equal(res.headers['x-custom'], 'yes');
    assert.equal(res.headers['content-type'], 'text/csv');
    assert.equal(res.text, 'a,b');
  });

  it('answers a thrown error with 500 and its message, and serves on', async () => {
    const res = await request(`${url()}/throw`);
    assert.equal(res.status, 500);
    assert.match(res.text, /boom/);
    const next = await request(`${url()}/text`);
    assert.equal(next.status, 200);
    assert.equal(next.text, 'hello world');
  });

  it('answers a body over 100kb with 413, chunked or not, and serves on', async () => {
    const big = 'x'.repeat(150 * KB);
    const sized = await request(`${url()}/`, { method: 'POST', body: big });
    assert.equal(sized.status, 413);
    const chunked = await request(`${url()}/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
      body: JSON.stringify(big),
    });
    assert.equal(chunked.status, 413);
    const justUnder = await request(`${url()}/`, { method: 'POST', body: 'y'.repeat(99 * KB) });
    assert.equal(justUnder.status, 200);
    assert.equal((JSON.parse(justUnder.text) as Echo).body, 'y'.repeat(99 * KB));
  });

  it('answers invalid JSON with 400', async () => {
    const res = await request(`${url()}/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{nope',
    });
    assert.equal(res.status, 400);
    assert.match(res.text, /JSON/);
  });
}

async function assertStopsOnSigterm(runner: Runner): Promise<void> {
  runner.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    runner.exited,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the runner did not exit within 5s')), 5000);
    }),
  ]).finally(() => clearTimeout(timer));
  assert.deepEqual(exit, { code: 0, signal: null }, runner.stderr);
}

describe('node template, CommonJS handler', () => {
  let runner: Runner;
  before(async () => {
    runner = await startNode('node-cjs');
  });
  contractSuite('cjs', () => runner.url);

  it('context.succeed() answers, and a later return value is ignored', async () => {
    const res = await request(`${runner.url}/succeed`);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.text), { via: 'succeed' });
  });

  it('context.fail() answers 500 when the status is still 200, else keeps it', async () => {
    const failed = await request(`${runner.url}/fail`);
    assert.equal(failed.status, 500);
    assert.equal(failed.text, 'failed on purpose');
    const teapot = await request(`${runner.url}/fail-418`);
    assert.equal(teapot.status, 418);
    assert.equal(teapot.text, 'teapot');
  });

  it('logs handler errors to stderr', async () => {
    await request(`${runner.url}/throw`);
    await waitFor(() => runner.stderr.includes('Error: boom'), { what: 'the error on stderr' });
  });

  it('exits 0 on SIGTERM', () => assertStopsOnSigterm(runner));
});

describe('node template, ES module handler', () => {
  let runner: Runner;
  before(async () => {
    runner = await startNode('node-esm');
  });

  it('calls the default export', async () => {
    const res = await request(`${runner.url}/esm/path?x=1`, {
      method: 'POST',
      ...json([1, 2, 3]),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-kind'], 'esm');
    assert.deepEqual(JSON.parse(res.text), {
      kind: 'esm',
      body: [1, 2, 3],
      path: '/esm/path',
      query: { x: '1' },
    });
  });

  it('answers a thrown error with 500 and serves on', async () => {
    const res = await request(`${runner.url}/throw`);
    assert.equal(res.status, 500);
    assert.equal(res.text, 'esm boom');
    assert.equal(res.headers['x-kind'], undefined);
    assert.equal((await request(`${runner.url}/`)).status, 200);
  });
});

describe('node template, body settings', () => {
  it('RAW_BODY=true gives the body as a Buffer', async () => {
    const runner = await startNode('node-cjs', { RAW_BODY: 'true' });
    const res = await request(`${runner.url}/raw`, { method: 'POST', ...json({ a: 1 }) });
    assert.deepEqual(JSON.parse(res.text), { isBuffer: true, length: 7 });
  });

  it('MAX_JSON_SIZE limits JSON bodies only', async () => {
    const runner = await startNode('node-cjs', { MAX_JSON_SIZE: '1kb' });
    const big = 'z'.repeat(2 * KB);
    const tooBig = await request(`${runner.url}/`, { method: 'POST', ...json(big) });
    assert.equal(tooBig.status, 413);
    const text = await request(`${runner.url}/`, { method: 'POST', body: big });
    assert.equal(text.status, 200);
  });
});

describe('python3 template', () => {
  let runner: Runner;
  before(async () => {
    runner = await startPython();
  });
  contractSuite('python', () => runner.url);

  it('answers bytes as application/octet-stream', async () => {
    const res = await request(`${runner.url}/bytes`);
    assert.equal(res.headers['content-type'], 'application/octet-stream');
    assert.deepEqual([...res.body], [0, 1]);
  });

  it('RAW_BODY=true gives the body as bytes', async () => {
    const raw = await startPython({ RAW_BODY: 'true' });
    const res = await request(`${raw.url}/raw`, { method: 'POST', ...json({ a: 1 }) });
    assert.deepEqual(JSON.parse(res.text), { isBytes: true, length: 7 });
  });

  it('exits 0 on SIGTERM', () => assertStopsOnSigterm(runner));
});

describe("templates' context.secret(name)", () => {
  const secrets = makeTempDir('fnbus-template-secrets-');
  writeFileSync(join(secrets, 'api-key'), 's3cret\n');
  for (const [name, start] of [
    ['node', () => startNode('node-cjs', { FNBUS_SECRETS_PATH: secrets })],
    ['python3', () => startPython({ FNBUS_SECRETS_PATH: secrets })],
  ] as const) {
    it(`${name}: reads $FNBUS_SECRETS_PATH/<name>; a missing one or a path is an error`, async (t) => {
      const runner = await start();
      t.after(() => runner.stop());
      const found = await request(`${runner.url}/secret?name=api-key`);
      assert.equal(found.status, 200, found.text);
      assert.equal(found.text, 's3cret\n');
      const missing = await request(`${runner.url}/secret?name=other`);
      assert.equal(missing.status, 500);
      assert.match(missing.text, /no secret .other.: list it in the function's secrets/);
      const path = await request(`${runner.url}/secret?name=..%2Fapi-key`);
      assert.equal(path.status, 500);
      assert.match(path.text, /not a secret name/);
    });
  }
});

describe('templates behind the watchdog (mode=http)', () => {
  const watchdogs: RunningWatchdog[] = [];
  after(() => Promise.all(watchdogs.map((watchdog) => watchdog.stop())));

  const cases = [
    { name: 'node', command: [process.execPath, nodeRunner], handler: 'node-cjs', kind: 'cjs' },
    { name: 'python3', command: ['python3', pythonRunner], handler: 'python', kind: 'python' },
  ];
  for (const { name, command, handler, kind } of cases) {
    describe(name, () => {
      let watchdog: RunningWatchdog;
      before(async () => {
        const port = await freePort();
        // Only upstream_url names the port: the runner reads it from the watchdog's environment.
        watchdog = await startWatchdog({
          mode: 'http',
          fprocess: fprocess(...command),
          upstream_url: `http://127.0.0.1:${port}`,
          handler_path: join(functions, handler),
        });
        watchdogs.push(watchdog);
      });
      contractSuite(kind, () => watchdog.url);

      it('stops with the watchdog: exit 0 on SIGTERM', async () => {
        assert.deepEqual(await watchdog.stop(), { code: 0, signal: null });
      });
    });
  }
});
