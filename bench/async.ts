/**
 * Async path benchmark: calls accepted by `/async-function` until the function has answered,
 * end to end through `fnbus up`, for each queue backend: calls per second, p50/p99 latency
 * (accepted → answered, from the call records), and how many were lost (must be 0) or run more
 * than once. Beside each backend, the same machine's raw rate of the bare backend without fnbus
 * (BullMQ add + Worker; JetStream publish + pull consumer), which bounds what fnbus can reach.
 *
 *   npm run bench:async        (BENCH_CALLS=20000, BENCH_BACKENDS=local,redis,nats by default)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import type { CallRecord } from '../core/queue.js';
import {
  cpuSeconds,
  gatewayApi,
  percentile,
  startProcess,
  stopProcess,
  until,
  waitForPort,
} from './processes.js';
import { bareRate } from './bare-queues.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const echoServer = join(root, 'bench', 'echo-server.cjs');
const barePipeline = fileURLToPath(new URL('./bare-pipeline.js', import.meta.url));
const calls = Number(process.env.BENCH_CALLS ?? 20_000);
const submitters = Number(process.env.BENCH_SUBMITTERS ?? 64);
const backends = (process.env.BENCH_BACKENDS ?? 'local,redis,nats').split(',');
const targets: Record<string, number> = { redis: 5000, nats: 10_000 };

interface Result {
  backend: string;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  lost: number;
  duplicated: number;
  bare?: number;
  pipeline?: number;
  /** The bare pipeline keeping each call's outcome: the floor the async path's guarantees set. */
  floor?: number;
  /** CPU time per call of the hub (its functions' processes included) and the backend's server. */
  cpuUs: number;
  /** The same for the bare pipeline (its process, the function's and the server's). */
  pipelineCpuUs?: number;
}

/** POSTs `calls` one-byte calls from `submitters` connections at once; the call ids accepted. */
async function submit(pool: Pool, path: string): Promise<string[]> {
  const accepted: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: submitters }, async () => {
      while (next < calls) {
        next += 1;
        const res = await pool.request({ method: 'POST', path, body: 'x' });
        await res.body.dump();
        if (res.statusCode !== 202) throw new Error(`submit answered ${res.statusCode}`);
        accepted.push(String(res.headers['x-call-id']));
      }
    }),
  );
  return accepted;
}

/** Starts the backend's server (redis-server, nats-server -js) on a port of its own. */
function startServer(backend: string, port: number) {
  const dir = mkdtempSync(join(tmpdir(), `fnbus-bench-${backend}-`));
  if (backend === 'redis') {
    return startProcess(
      'redis-server',
      ['--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'yes'],
      process.env,
    );
  }
  return startProcess('nats-server', ['-js', '-p', String(port), '-sd', dir], process.env);
}

/** `hubRoot`: the fnbus checkout whose bin/fnbus runs the hub; bare figures only with `bare`. */
async function measure(
  backend: string,
  index: number,
  hubRoot = root,
  bare = true,
): Promise<Result> {
  const hubPort = 18600 + index * 10;
  const serverPort = 18605 + index * 10;
  const server = backend === 'local' ? undefined : startServer(backend, serverPort);
  if (server) await waitForPort(serverPort);
  const queueUrl = backend === 'local' ? 'local' : `${backend}://127.0.0.1:${serverPort}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'fnbus-bench-async-'));
  const hub = startProcess(
    join(hubRoot, 'bin', 'fnbus'),
    ['up', '--port', String(hubPort), '--state-dir', stateDir, '--queue', queueUrl],
    // On loopback, set up through /system without credentials.
    { ...process.env, basic_auth: 'false', max_inflight: process.env.BENCH_MAX_INFLIGHT ?? '128' },
  );
  const gateway = new Pool(`http://127.0.0.1:${hubPort}`, { connections: submitters });
  try {
    await waitForPort(hubPort);
    const api = (method: 'GET' | 'POST', path: string, body?: unknown) =>
      gatewayApi(gateway, method, path, body);
    await api('POST', '/system/functions', {
      service: 'noop',
      image: 'bench/echo',
      envProcess: `node ${echoServer}`,
      envVars: { mode: 'http' },
    });
    await until(
      async () =>
        (await api('GET', '/system/function/noop')).text.includes('"availableReplicas":1'),
      'noop to be ready',
    );

    const pids = [hub.pid as number, ...(server ? [server.pid as number] : [])];
    const cpuBefore = await cpuSeconds(...pids);
    const startedAt = performance.now();
    const accepted = await submit(gateway, '/async-function/noop');
    // From the gateway's own counter, via /system/function (not /metrics: a scrape also reads the
    // queue's depth, which on Redis and NATS means reading every waiting call).
    if (process.env.BENCH_VERBOSE) {
      const submitted = (performance.now() - startedAt) / 1000;
      process.stderr.write(
        `${backend}: submitted at ${(accepted.length / submitted).toFixed(0)}/s\n`,
      );
    }
    const invocations = async () => {
      const { text } = await api('GET', '/system/function/noop');
      return (JSON.parse(text) as { invocationCount?: number }).invocationCount ?? 0;
    };
    await until(async () => (await invocations()) >= accepted.length, 'every call to run');
    const seconds = (performance.now() - startedAt) / 1000;
    const cpuUs = (((await cpuSeconds(...pids)) - cpuBefore) * 1e6) / accepted.length;
    const ran = await invocations();

    const latencies: number[] = [];
    let lost = 0;
    for (const id of accepted) {
      const { status, text } = await api('GET', `/system/calls/${id}`);
      const record = status === 200 ? (JSON.parse(text) as CallRecord) : undefined;
      const attempt = record?.attempts.at(-1);
      if (record?.state !== 'succeeded' || !attempt) {
        lost += 1;
        continue;
      }
      const answeredAt = Date.parse(attempt.startedAt) + attempt.durationMs;
      latencies.push(answeredAt - Date.parse(record.enqueuedAt));
    }
    latencies.sort((a, b) => a - b);
    const result: Result = {
      backend,
      perSecond: accepted.length / seconds,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      lost,
      duplicated: Math.max(0, ran - accepted.length),
      cpuUs,
    };
    // The bare figures on the same server, with the hub stopped (its idle polling aside).
    await stopProcess(hub);
    if (!bare) return result;
    result.bare = server ? await bareRate(backend, queueUrl, calls) : undefined;
    const floor = await barePipelineRate(backend, queueUrl, hubPort + 2, server?.pid, true);
    return {
      ...result,
      ...(await barePipelineRate(backend, queueUrl, hubPort + 2, server?.pid)),
      floor: floor.pipeline,
    };
  } finally {
    await gateway.close();
    await stopProcess(hub);
    if (server) await stopProcess(server);
  }
}

/** The same calls through `bare-pipeline.ts` (the shape of the async path without fnbus). */
async function barePipelineRate(
  backend: string,
  queueUrl: string,
  port: number,
  serverPid: number | undefined,
  records = false,
): Promise<{ pipeline: number; pipelineCpuUs: number }> {
  const functionPort = port + 1;
  const fn = startProcess('node', [echoServer], { ...process.env, PORT: String(functionPort) });
  const pipeline = startProcess(
    'node',
    [
      barePipeline,
      'serve',
      backend,
      queueUrl,
      String(port),
      `http://127.0.0.1:${functionPort}`,
      ...(records ? ['records'] : []),
    ],
    process.env,
  );
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: submitters });
  try {
    await waitForPort(functionPort);
    await waitForPort(port);
    const pids = [fn.pid as number, pipeline.pid as number, ...(serverPid ? [serverPid] : [])];
    const cpuBefore = await cpuSeconds(...pids);
    const startedAt = performance.now();
    const accepted = await submit(pool, '/');
    const answered = async () => {
      const res = await pool.request({ method: 'GET', path: '/' });
      return Number(await res.body.text());
    };
    await until(async () => (await answered()) >= accepted.length, 'the bare pipeline');
    const seconds = (performance.now() - startedAt) / 1000;
    const cpu = (await cpuSeconds(...pids)) - cpuBefore;
    return { pipeline: accepted.length / seconds, pipelineCpuUs: (cpu * 1e6) / accepted.length };
  } finally {
    await pool.close();
    await stopProcess(pipeline);
    await stopProcess(fn);
  }
}

function line(r: Result, pipeline = r.pipeline, pipelineCpuUs = r.pipelineCpuUs): string {
  const target = targets[r.backend];
  return [
    `${r.backend.padEnd(6)} ${r.perSecond.toFixed(0).padStart(6)} calls/s  p50 ${r.p50Ms.toFixed(0)} ms  p99 ${r.p99Ms.toFixed(0)} ms  lost ${r.lost}  run twice ${r.duplicated}`,
    target ? `  (target >= ${target}/s)` : '',
    r.bare
      ? `  bare ${r.backend === 'redis' ? 'BullMQ' : 'JetStream'}: ${r.bare.toFixed(0)}/s`
      : '',
    r.pipeline ? `  bare pipeline: ${r.pipeline.toFixed(0)}/s` : '',
    r.floor && r.pipeline
      ? `  (keeping outcomes: ${r.floor.toFixed(0)}/s, ${(r.floor / r.pipeline).toFixed(2)}x)`
      : '',
    pipeline
      ? `  ratio to the bare pipeline ${(r.perSecond / pipeline).toFixed(2)}x (target >= 0.80x)`
      : '',
    `\n       CPU ${r.cpuUs.toFixed(0)} µs a call`,
    pipelineCpuUs
      ? `  bare pipeline ${pipelineCpuUs.toFixed(0)} µs  (bare / fnbus ${(pipelineCpuUs / r.cpuUs).toFixed(2)}x)`
      : '',
  ].join('');
}

process.stdout.write(
  `${calls} calls per backend, ${submitters} submitting at once, accepted → answered` +
    ` (hub node flags: bin/fnbus defaults${process.env.FNBUS_NODE_FLAGS ? ` + ${process.env.FNBUS_NODE_FLAGS}` : ''})\n`,
);
// BENCH_BASELINE: another fnbus checkout, built (e.g. main), measured in the same run for a
// before/after; BENCH_ROUNDS repeats the whole set (the machine is shared: compare within a round).
const baseline = process.env.BENCH_BASELINE;
const rounds = Number(process.env.BENCH_ROUNDS ?? 1);
for (let round = 1; round <= rounds; round++) {
  if (rounds > 1) process.stdout.write(`round ${round}\n`);
  for (const [index, backend] of backends.entries()) {
    const result = await measure(backend, index);
    process.stdout.write(`${line(result)}\n`);
    if (baseline) {
      const before = await measure(backend, index, baseline, false);
      before.backend = `${backend} (baseline)`;
      process.stdout.write(`${line(before, result.pipeline, result.pipelineCpuUs)}\n`);
    }
  }
}
