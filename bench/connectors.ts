/**
 * Connector benchmark, through `fnbus up` as users run it:
 * - cron firing jitter: functions scheduled every second (6-field cron); each records how late
 *   its calls came after their slot (X-Scheduled-Time), as the function sees it (timer, claim,
 *   the call through the gateway and the in-hub watchdog); p50/p99 over the firings.
 * - webhook ingest → function answered, per second: `POST /webhook/<topic>` from 64 connections
 *   until every call has run, to a no-op function invoked synchronously (the answer is the
 *   function's) and asynchronously (202 once queued; counted when the function has run them).
 *
 *   npm run bench:connectors   (BENCH_CRON_SECONDS=30, BENCH_CRON_FUNCTIONS=10, BENCH_CALLS=10000)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import {
  gatewayApi,
  percentile,
  startProcess,
  stopProcess,
  until,
  waitForPort,
} from './processes.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cronSeconds = Number(process.env.BENCH_CRON_SECONDS ?? 30);
const cronFunctions = Number(process.env.BENCH_CRON_FUNCTIONS ?? 10);
const calls = Number(process.env.BENCH_CALLS ?? 10_000);
const submitters = 64;

const port = 18700;
const stateDir = mkdtempSync(join(tmpdir(), 'fnbus-bench-connectors-'));
const hub = startProcess(
  join(root, 'bin', 'fnbus'),
  ['up', '--port', String(port), '--state-dir', stateDir],
  // On loopback, set up through /system without credentials.
  {
    ...process.env,
    basic_auth: 'false',
    rebuild_interval: '500ms',
    print_response: 'false',
    max_inflight: '128',
  },
);
const gateway = new Pool(`http://127.0.0.1:${port}`, { connections: submitters });

const api = (method: 'GET' | 'POST', path: string, body?: unknown) =>
  gatewayApi(gateway, method, path, body);

async function deploy(name: string, server: string, annotations: Record<string, string>) {
  const res = await api('POST', '/system/functions', {
    service: name,
    image: 'bench/function',
    envProcess: `node ${join(root, 'bench', server)}`,
    envVars: { mode: 'http' },
    annotations,
  });
  if (res.status !== 202) throw new Error(`deploy ${name}: ${res.status} ${res.text}`);
  await until(
    async () =>
      (await api('GET', `/system/function/${name}`)).text.includes('"availableReplicas":1'),
    `${name} to be ready`,
  );
}

async function invocations(name: string): Promise<number> {
  const { text } = await api('GET', `/system/function/${name}`);
  return (JSON.parse(text) as { invocationCount?: number }).invocationCount ?? 0;
}

/** `fnbus_cron_firing_lateness_seconds` buckets: upper bound (s) → firings, from /metrics. */
async function latenessBuckets(): Promise<Map<number, number>> {
  const { text } = await api('GET', '/metrics');
  const buckets = new Map<number, number>();
  for (const match of text.matchAll(
    /^fnbus_cron_firing_lateness_seconds_bucket\{le="([^"]+)"\} (\d+)/gm,
  )) {
    buckets.set(match[1] === '+Inf' ? Infinity : Number(match[1]), Number(match[2]));
  }
  return buckets;
}

/** The smallest bucket bound holding `p`% of the firings counted between two scrapes, in ms. */
function bucketPercentile(before: Map<number, number>, after: Map<number, number>, p: number) {
  const counts = [...after].map(([le, n]) => [le, n - (before.get(le) ?? 0)] as const);
  const total = counts.at(-1)?.[1] ?? 0;
  const bound = counts.find(([, n]) => n >= (p / 100) * total)?.[0] ?? Infinity;
  return `≤ ${bound * 1000} ms`;
}

async function cronJitter() {
  const names = Array.from({ length: cronFunctions }, (_, i) => `tick-${i}`);
  for (const name of names) {
    await deploy(name, 'lateness-server.cjs', { topic: 'cron-function', schedule: '* * * * * *' });
  }
  // Counted from a second after the last deployment: starting functions is not the steady state.
  const from = Date.now() + 1000;
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const before = await latenessBuckets();
  await new Promise((resolve) => setTimeout(resolve, cronSeconds * 1000));
  const after = await latenessBuckets();
  const lateness: number[] = [];
  for (const name of names) {
    const pairs = JSON.parse((await api('GET', `/function/${name}`)).text) as [number, number][];
    lateness.push(...pairs.filter(([scheduled]) => scheduled >= from).map(([, late]) => late));
  }
  lateness.sort((a, b) => a - b);
  return {
    lateness,
    dispatched: {
      p50: bucketPercentile(before, after, 50),
      p99: bucketPercentile(before, after, 99),
    },
  };
}

/** Calls per second from the first webhook to the last call answered. */
async function webhookRate(topic: string, fn: string, sync: boolean): Promise<number> {
  // Once the connector's map has the topic (it is rebuilt every 500 ms here).
  await until(
    async () => (await api('POST', `/webhook/${topic}`)).status !== 404,
    `${topic} to be mapped`,
  );
  await until(async () => (await invocations(fn)) > 0, `${fn} to be called`);
  const before = await invocations(fn);
  const startedAt = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: submitters }, async () => {
      while (next < calls) {
        next += 1;
        const res = await gateway.request({ method: 'POST', path: `/webhook/${topic}`, body: 'x' });
        await res.body.dump();
        const expected = sync ? 200 : 202;
        if (res.statusCode !== expected) throw new Error(`webhook answered ${res.statusCode}`);
      }
    }),
  );
  await until(async () => (await invocations(fn)) - before >= calls, `${calls} calls to run`);
  return calls / ((performance.now() - startedAt) / 1000);
}

try {
  await waitForPort(port);
  const { lateness, dispatched } = await cronJitter();
  process.stdout.write(
    `cron: ${lateness.length} firings of ${cronFunctions} functions every second for ${cronSeconds} s\n` +
      `  call sent after its slot (the connector's firing jitter): p50 ${dispatched.p50}, p99 ${dispatched.p99} (target p99 <= 10 ms)\n` +
      `  call arrived at the function after its slot: p50 ${percentile(lateness, 50)} ms,` +
      ` p99 ${percentile(lateness, 99)} ms, max ${lateness.at(-1)} ms\n`,
  );
  await deploy('hook-sync', 'echo-server.cjs', {
    topic: 'bench-sync',
    'fnbus.connector.invocation': 'sync',
  });
  await deploy('hook-async', 'echo-server.cjs', { topic: 'bench-async' });
  const sync = await webhookRate('bench-sync', 'hook-sync', true);
  process.stdout.write(`webhook → function answered, sync: ${sync.toFixed(0)} calls/s\n`);
  const async = await webhookRate('bench-async', 'hook-async', false);
  process.stdout.write(`webhook → function answered, async: ${async.toFixed(0)} calls/s\n`);
} finally {
  await gateway.close();
  await stopProcess(hub);
}
