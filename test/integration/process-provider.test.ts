import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NotFoundError, ValidationError } from '../../core/errors.js';
import type { FunctionDeployment } from '../../core/function-types.js';
import { LocalImageStore } from '../../deploy/process/local-image-store.js';
import {
  ProcessProvider,
  type ProcessProviderOptions,
} from '../../deploy/process/process-provider.js';
import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { providerContract, randomName } from './provider-contract.js';

/** The repository root: this file is dist/test/integration/process-provider.test.js once built. */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const readyTimeoutMs = 15_000;

function echoFunction(name: string): FunctionDeployment {
  return {
    service: name,
    image: 'ghcr.io/openfaas/alpine:latest',
    envProcess: 'cat',
    envVars: { log_callid: 'true' },
  };
}

/** The node template's sample handler, run in http mode (a long-running function process). */
function nodeFunction(name: string): FunctionDeployment {
  return {
    service: name,
    image: `${name}:latest`,
    annotations: {
      'fnbus.lang': 'node',
      'fnbus.handler': join(repoRoot, 'templates', 'node', 'function'),
    },
  };
}

const stateDirs: string[] = [];
function makeStateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fnbus-process-provider-'));
  stateDirs.push(dir);
  return dir;
}
process.once('exit', () => {
  for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });
});

async function startProvider(
  options: Partial<ProcessProviderOptions> = {},
): Promise<ProcessProvider> {
  const provider = new ProcessProvider({
    stateDir: options.stateDir ?? makeStateDir(),
    drainDelayMs: 200,
    ...options,
  });
  await provider.start();
  return provider;
}

providerContract('ProcessProvider', async () => {
  const provider = await startProvider();
  return { provider, echoFunction, close: () => provider.close() };
});

describe('ProcessProvider', () => {
  const providers: ProcessProvider[] = [];
  let stateDir: string;
  beforeEach(() => {
    stateDir = makeStateDir();
  });
  afterEach(async () => {
    await Promise.all(providers.splice(0).map((provider) => provider.close()));
  });
  const open = async (options: Partial<ProcessProviderOptions> = {}) => {
    const provider = await startProvider({ stateDir, ...options });
    providers.push(provider);
    return provider;
  };
  const available = (provider: ProcessProvider, fn: string, replicas: number) =>
    waitFor(async () => (await provider.get(fn))?.availableReplicas === replicas, {
      timeoutMs: readyTimeoutMs,
      intervalMs: 25,
      what: `${fn} to have ${replicas} ready replicas`,
    });
  const readLogs = async (provider: ProcessProvider, fn: string): Promise<string[]> => {
    const texts: string[] = [];
    const req = { name: fn, follow: false };
    for await (const message of provider.logs(req, AbortSignal.timeout(5000))) {
      texts.push(message.text);
    }
    return texts;
  };
  const call = async (provider: ProcessProvider, fn: string, body = 'ping') => {
    const base = await provider.resolve(fn);
    return request(new URL('/', base).href, { method: 'POST', body });
  };

  it('restarts a function process that is killed, and the replica serves again', async () => {
    const provider = await open();
    const fn = randomName();
    await provider.deploy(nodeFunction(fn));
    await available(provider, fn, 1);
    const [before] = provider.instances(fn);
    assert.ok(before?.pid);
    process.kill(before.pid, 'SIGKILL');
    await waitFor(
      () => {
        const [now] = provider.instances(fn);
        return now?.ready === true && now.pid !== before.pid && now.restarts >= 1;
      },
      { timeoutMs: readyTimeoutMs, what: 'the replica to come back' },
    );
    const again = await call(provider, fn, JSON.stringify('again'));
    assert.equal(again.status, 200, again.text);
    const lines = await readLogs(provider, fn);
    assert.ok(
      lines.some((text) => text.includes('function process exited; restarting')),
      lines.join('\n'),
    );
  });

  it('refuses a deployment whose watchdog settings are wrong, naming each', async () => {
    const provider = await open();
    const fn = randomName();
    await assert.rejects(
      provider.deploy({
        ...echoFunction(fn),
        envVars: { exec_timeout: 'soon', max_inflight: '-1' },
      }),
      (error: Error) =>
        error instanceof ValidationError &&
        /exec_timeout/.test(error.message) &&
        /max_inflight/.test(error.message),
    );
    assert.equal(await provider.get(fn), undefined, 'nothing was deployed');
  });

  it('updates without dropping a call: new replicas first, the old ones after', async () => {
    const provider = await open();
    const fn = randomName();
    await provider.deploy(echoFunction(fn));
    await provider.scale(fn, 2);
    await available(provider, fn, 2);

    const statuses: number[] = [];
    const bodies: string[] = [];
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const response = await call(provider, fn, 'v1');
        statuses.push(response.status);
        bodies.push(response.text);
      }
    })();
    await waitFor(() => statuses.length >= 5, { what: 'calls before the update' });
    await provider.update({ ...echoFunction(fn), envProcess: 'echo v2' });
    await waitFor(
      () => {
        const replicas = provider.instances(fn);
        return (
          replicas.length === 2 &&
          replicas.every((replica) => replica.generation === 2 && replica.ready) &&
          bodies.at(-1)?.trim() === 'v2'
        );
      },
      { timeoutMs: readyTimeoutMs, what: 'the update to roll out' },
    );
    const count = statuses.length;
    // Past the old replicas' drain delay and stop.
    await waitFor(() => statuses.length >= count + 20, { what: 'calls after the update' });
    stop = true;
    await loop;
    assert.deepEqual(
      statuses.filter((status) => status !== 200),
      [],
      'every call during the update got a 200',
    );
    assert.ok(bodies.includes('v1') && bodies.some((body) => body.trim() === 'v2'));
  });

  it('brings functions back, with their replicas, when restarted on the same state folder', async () => {
    const first = await open();
    const fn = randomName();
    await first.deploy({ ...echoFunction(fn), labels: { keep: 'me' } });
    await first.scale(fn, 2);
    await available(first, fn, 2);
    const createdAt = (await first.get(fn))?.createdAt;
    await first.close();

    const files = readdirSync(join(stateDir, 'functions'));
    assert.deepEqual(files, [`${fn}.json`], 'one record, no temporary file left');
    const saved = JSON.parse(readFileSync(join(stateDir, 'functions', files[0]!), 'utf8')) as {
      replicas: number;
    };
    assert.equal(saved.replicas, 2);

    const second = await open();
    const status = await second.get(fn);
    assert.equal(status?.replicas, 2);
    assert.equal(status?.createdAt, createdAt);
    // Read back as any deployment is checked (core's normalizeDeployment): faas_function added.
    assert.deepEqual(status?.labels, { faas_function: fn, keep: 'me' });
    await available(second, fn, 2);
    assert.equal((await call(second, fn, 'back again')).text, 'back again');

    await second.remove(fn);
    assert.equal(existsSync(join(stateDir, 'functions', `${fn}.json`)), false);
    assert.equal(existsSync(join(stateDir, 'run', fn)), false);
  });

  it('runs a node template handler in http mode', async () => {
    const provider = await open();
    const fn = randomName();
    await provider.deploy(nodeFunction(fn));
    await available(provider, fn, 1);
    const base = await provider.resolve(fn);
    const response = await request(new URL('/', base).href, {
      method: 'POST',
      body: JSON.stringify({ hello: 'world' }),
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(response.status, 200, response.text);
    assert.deepEqual(JSON.parse(response.text), { status: 'Received input: {"hello":"world"}' });
  });

  it('runs a template function by its image name, as fnbus build recorded it on this machine', async () => {
    const images = new LocalImageStore(makeStateDir());
    const provider = await open({ images });
    const fn = randomName();
    // Built as `example/<fn>`: the same image as `example/<fn>:latest`.
    images.save(`example/${fn}`, {
      lang: 'node',
      handler: join(repoRoot, 'templates', 'node', 'function'),
      fprocess: 'node index.js',
    });
    await provider.deploy({ service: fn, image: `example/${fn}:latest` });
    await available(provider, fn, 1);
    const response = await call(provider, fn, 'built');
    assert.equal(response.status, 200, response.text);
    assert.deepEqual(JSON.parse(response.text), { status: 'Received input: "built"' });
    // Nothing of this machine in what is kept and shown: the deployment names the image only.
    assert.doesNotMatch(JSON.stringify(await provider.get(fn)), new RegExp(repoRoot));
    // Nor in the function's logs: the runner and the handler by name, not by where they are.
    const logs = (await readLogs(provider, fn)).join('\n');
    assert.match(logs, /started function process|listening/);
    assert.doesNotMatch(logs, new RegExp(repoRoot));

    // faas-cli sends the template's own fprocess: still the template; another command is run.
    const viaFaasCli = randomName();
    await provider.deploy({
      service: viaFaasCli,
      image: `example/${fn}`,
      envProcess: 'node index.js',
    });
    const own = randomName();
    await provider.deploy({ service: own, image: `example/${fn}`, envProcess: 'cat' });
    await available(provider, viaFaasCli, 1);
    await available(provider, own, 1);
    assert.deepEqual(JSON.parse((await call(provider, viaFaasCli, 'cli')).text), {
      status: 'Received input: "cli"',
    });
    assert.equal((await call(provider, own, 'as is')).text, 'as is');

    // An image not built here, with nothing else to run, is refused, naming the image only.
    await assert.rejects(
      provider.deploy({ service: randomName(), image: 'example/not-built:1.0' }),
      (error: Error) =>
        error instanceof ValidationError &&
        /image "example\/not-built:1\.0" is not built on this machine/.test(error.message) &&
        !error.message.includes(images.dir),
    );
  });

  it('gives a function the secrets it lists, as files in FNBUS_SECRETS_PATH', async () => {
    const provider = await open();
    await provider.secrets.create({ name: 'api-key', value: 's3cret' });
    assert.deepEqual(await provider.secrets.list(), [
      { name: 'api-key', namespace: 'openfaas-fn' },
    ]);
    const fn = randomName();
    await provider.deploy({
      service: fn,
      image: 'x',
      envProcess: `sh -c 'cat "$FNBUS_SECRETS_PATH/api-key"'`,
      secrets: ['api-key'],
    });
    await available(provider, fn, 1);
    assert.equal((await call(provider, fn)).text, 's3cret');
    await assert.rejects(
      provider.deploy({
        service: randomName(),
        image: 'x',
        envProcess: 'cat',
        secrets: ['missing'],
      }),
      ValidationError,
    );
  });

  it("runs each replica in a folder of its own, never the hub's working directory", async () => {
    const provider = await open();
    const fn = randomName();
    // Fork mode (a process per call) and http mode (one long-running process) alike.
    await provider.deploy({ service: fn, image: 'x', envProcess: 'sh -c pwd' });
    const served = randomName();
    await provider.deploy({
      service: served,
      image: 'x',
      envProcess: `node -e "require('http').createServer((q,s)=>s.end(process.cwd())).listen(process.env.PORT)"`,
      envVars: { mode: 'http' },
    });
    await available(provider, fn, 1);
    await available(provider, served, 1);
    for (const name of [fn, served]) {
      const cwd = (await call(provider, name)).text.trim();
      assert.notEqual(cwd, process.cwd(), name);
      assert.ok(cwd.startsWith(stateDir), `${name} runs in ${cwd}`);
      // Writable, as a container's working folder is: TMPDIR is inside it.
      assert.ok(existsSync(join(cwd, 'tmp')), name);
    }
  });

  it('keeps a bounded number of log lines per function', async () => {
    const provider = await open({ logLines: 5 });
    const fn = randomName();
    await provider.deploy(echoFunction(fn));
    await available(provider, fn, 1);
    for (let i = 0; i < 8; i++) assert.equal((await call(provider, fn)).status, 200);
    // The last call's line may be written just after its answer: wait for it.
    const lines = await waitFor(
      async () => {
        const texts = await readLogs(provider, fn);
        // Each call's lines: `Forking fprocess.`, `Wrote N Bytes ...`, its JSON line (log_callid,
        // written once the answer is sent: the last).
        const ofCalls = /"msg":"call"|Forking fprocess\.$|Wrote \d+ Bytes - Duration/;
        const last = texts.at(-1) ?? '';
        return texts.every((text) => ofCalls.test(text)) && last.includes('"msg":"call"') && texts;
      },
      { what: 'only the lines of calls to remain, the last call logged whole' },
    );
    assert.equal(lines.length, 5);
  });

  it('rejects a template it does not know, or a handler that is not there', async () => {
    const provider = await open();
    await assert.rejects(
      provider.deploy({
        service: randomName(),
        image: 'x',
        annotations: { 'fnbus.lang': 'cobol' },
      }),
      ValidationError,
    );
    await assert.rejects(
      provider.deploy({
        service: randomName(),
        image: 'x',
        annotations: { 'fnbus.lang': 'node', 'fnbus.handler': '/no/such/folder' },
      }),
      ValidationError,
    );
    await assert.rejects(
      provider.deploy({ ...echoFunction(randomName()), namespace: 'elsewhere' }),
      ValidationError,
    );
    await assert.rejects(provider.scale(randomName(), 1, 'elsewhere'), NotFoundError);
  });
});
