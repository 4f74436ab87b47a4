/**
 * Gateway benchmark: a call through `fnbus up` (gateway → watchdog → function) beside the same
 * function's watchdog called directly, the gateway's memory under load, and cold starts from
 * zero replicas. The OpenFaaS chain (its gateway → of-watchdog → node) is the anchor from
 * shared/reference/anchors.md, scaled by this run's bare-node figure, unless measured.
 *
 *   npm run bench:gateway      (wrk from Debian's package must be on PATH)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  peakRssMb,
  percentile,
  startProcess,
  stopProcess,
  until,
  waitForPort,
} from './processes.js';
import { wrk, type LoadResult } from './wrk.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const echoServer = join(root, 'bench', 'echo-server.cjs');
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const anchors = { bareNode: 69_500, openfaasChain: 6_700 };
const hubPort = 18100;
const functionPort = 13100;
const directPort = 18101;
const directUpstreamPort = 13101;

async function api(path: string, init?: RequestInit): Promise<Response> {
  const res = await fetch(`http://127.0.0.1:${hubPort}${path}`, {
    ...init,
    headers: { 'Content-Type': 'application/json' },
  });
  if (res.status >= 400) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res;
}

async function available(name: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${hubPort}/system/function/${name}`);
  return ((await res.json()) as { availableReplicas?: number }).availableReplicas ?? 0;
}

/** Cold starts are timed by these waits: look often. */
const fast = { timeoutMs: 30_000, everyMs: 5 };

/** Deploys the function, then 20 times: scale to zero, time the first call. Sorted, in ms. */
async function coldStarts(spec: { service: string } & Record<string, unknown>): Promise<number[]> {
  const name = spec.service;
  await api('/system/functions', { method: 'POST', body: JSON.stringify(spec) });
  await until(async () => (await available(name)) === 1, `${name} to be ready`, fast);
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    await api(`/system/scale-function/${name}`, {
      method: 'POST',
      body: JSON.stringify({ replicas: 0 }),
    });
    await until(async () => (await available(name)) === 0, `${name} to reach zero`, fast);
    const started = performance.now();
    const res = await fetch(`http://127.0.0.1:${hubPort}/function/${name}`, {
      method: 'POST',
      body: 'x',
    });
    await res.text();
    if (res.status !== 200) throw new Error(`cold start of ${name} answered ${res.status}`);
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b);
}

async function load(url: string): Promise<LoadResult> {
  await wrk(url, { seconds: 2 });
  return wrk(url, { seconds });
}

async function main(): Promise<void> {
  const bare = startProcess('node', [echoServer], { ...process.env, PORT: String(functionPort) });
  await waitForPort(functionPort);
  const bareResult = await load(`http://127.0.0.1:${functionPort}/`);
  await stopProcess(bare);

  const stateDir = mkdtempSync(join(tmpdir(), 'fnbus-bench-hub-'));
  const hub = startProcess(
    join(root, 'bin', 'fnbus'),
    ['up', '--port', String(hubPort), '--state-dir', stateDir],
    // On loopback, set up through /system without credentials.
    { ...process.env, basic_auth: 'false' },
  );
  try {
    await waitForPort(hubPort);
    const httpFunction = {
      service: 'echo',
      image: 'bench/echo',
      envProcess: `node ${echoServer}`,
      envVars: {
        mode: 'http',
        upstream_url: `http://127.0.0.1:${functionPort}`,
        PORT: String(functionPort),
      },
    };
    await api('/system/functions', { method: 'POST', body: JSON.stringify(httpFunction) });
    await until(async () => (await available('echo')) === 1, 'echo to be ready', fast);
    const throughGateway = await load(`http://127.0.0.1:${hubPort}/function/echo`);
    const hubRssMb = hub.pid ? await peakRssMb(hub.pid) : Number.NaN;

    const direct = startProcess(join(root, 'bin', 'fnbus-watchdog'), [], {
      PATH: process.env.PATH,
      TMPDIR: mkdtempSync(join(tmpdir(), 'fnbus-bench-wd-')),
      port: String(directPort),
      metrics_port: '0',
      mode: 'http',
      fprocess: `node ${echoServer}`,
      upstream_url: `http://127.0.0.1:${directUpstreamPort}`,
      PORT: String(directUpstreamPort),
    });
    await waitForPort(directPort);
    const straight = await load(`http://127.0.0.1:${directPort}/`);
    await stopProcess(direct);

    // Cold starts: scaled to zero, then called; a forked function (cat) and an http-mode one
    // (a node server, started and waited for).
    const forkedCold = await coldStarts({
      service: 'cold-cat',
      image: 'bench/cat',
      envProcess: 'cat',
    });
    const httpCold = await coldStarts({
      service: 'cold-node',
      image: 'bench/echo',
      envProcess: `node ${echoServer}`,
      envVars: { mode: 'http' },
    });

    const scale = bareResult.requestsPerSecond / anchors.bareNode;
    const openfaasChain = anchors.openfaasChain * scale;
    const row = (name: string, r: LoadResult) =>
      `${name.padEnd(44)} ${r.requestsPerSecond.toFixed(0).padStart(7)} req/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  errors ${r.errors + r.non2xx}`;
    process.stdout.write(
      [
        row('bare node:http echo server', bareResult),
        row('watchdog (http) -> node, direct', straight),
        row('fnbus gateway -> watchdog -> node', throughGateway),
        `${'OpenFaaS gateway -> of-watchdog -> node'.padEnd(44)} ${openfaasChain.toFixed(0).padStart(7)} req/s  (anchor x ${scale.toFixed(2)})`,
        '',
        `fnbus chain / OpenFaaS chain = ${(throughGateway.requestsPerSecond / openfaasChain).toFixed(2)}x (target >= 2x)`,
        `gateway adds ${(throughGateway.p50Ms - straight.p50Ms).toFixed(2)} ms at p50 (target <= 0.5 ms)`,
        `hub peak RSS under load: ${hubRssMb.toFixed(1)} MB (target <= 80 MB; gateway and watchdogs, function processes not counted)`,
        `cold start from zero, 20 cycles, forked cat: p50 ${percentile(forkedCold, 50).toFixed(1)} ms, p99 ${percentile(forkedCold, 99).toFixed(1)} ms (target <= 100 ms p50)`,
        `cold start from zero, 20 cycles, http-mode node: p50 ${percentile(httpCold, 50).toFixed(1)} ms, p99 ${percentile(httpCold, 99).toFixed(1)} ms`,
        '',
      ].join('\n'),
    );
  } finally {
    await stopProcess(hub);
  }
}

await main();
