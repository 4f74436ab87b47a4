/**
 * Watchdog benchmark: fnbus-watchdog beside OpenFaaS's watchdogs, on one machine, in one run.
 *
 *   npm run bench:watchdog            (wrk from Debian's package must be on PATH)
 *
 * OpenFaaS's binaries are measured when found: $OF_WATCHDOG / $CLASSIC_WATCHDOG, or `of-watchdog`
 * and `classic-watchdog` on PATH. Without them the anchors from shared/reference/anchors.md are
 * printed instead, scaled by this run's bare-node figure against the anchor's, and marked so.
 * Figures are not comparable across runs or machines: only ratios from one run are.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { helperPids, peakRssMb, startProcess, stopProcess, waitForPort } from './processes.js';
import { wrk, type LoadResult } from './wrk.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const echoServer = join(root, 'bench', 'echo-server.cjs');
/** What users run: the bin, which starts node with the watchdog's memory settings. */
const watchdogBin = join(root, 'bin', 'fnbus-watchdog');
const seconds = Number(process.env.BENCH_SECONDS ?? 8);

/** anchors.md, measured on this kind of machine with the same load. */
const anchors = {
  bareNode: 69_500,
  ofWatchdogHttp: 13_300,
  classicCat: 1_735,
  ofWatchdogStreamingCat: 1_395,
};

interface Row extends LoadResult {
  name: string;
  rssMb: number;
  anchor?: boolean;
}

const upstreamPort = 13000;
const watchdogPort = 18080;

function which(name: string, envName: string): string | undefined {
  const fromEnv = process.env[envName];
  if (fromEnv) return fromEnv;
  try {
    return execFileSync('which', [name], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

async function measure(
  name: string,
  start: () => { pid: number | undefined; stop: () => Promise<void> },
  port: number,
): Promise<Row> {
  const proc = start();
  try {
    await waitForPort(port);
    // Warm up JITs and connection pools before the measured run.
    await wrk(`http://127.0.0.1:${port}/`, { seconds: 2 });
    const result = await wrk(`http://127.0.0.1:${port}/`, { seconds });
    const rssMb = proc.pid
      ? await peakRssMb(proc.pid, ...(await helperPids(proc.pid)))
      : Number.NaN;
    return { name, rssMb, ...result };
  } finally {
    await proc.stop();
  }
}

function bareNode() {
  const child = startProcess('node', [echoServer], { ...process.env, PORT: String(upstreamPort) });
  return { pid: child.pid, stop: () => stopProcess(child) };
}

function watchdog(binary: string, args: string[], env: NodeJS.ProcessEnv) {
  const dir = mkdtempSync(join(tmpdir(), 'fnbus-bench-'));
  const child = startProcess(binary, args, {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TMPDIR: dir,
    port: String(watchdogPort),
    metrics_port: '18091',
    ...env,
  });
  return { pid: child.pid, stop: () => stopProcess(child) };
}

const httpEnv = {
  mode: 'http',
  fprocess: `node ${echoServer}`,
  upstream_url: `http://127.0.0.1:${upstreamPort}`,
  PORT: String(upstreamPort),
};

async function main(): Promise<void> {
  const rows: Row[] = [];
  const bare = await measure('bare node:http echo server', bareNode, upstreamPort);
  rows.push(bare);
  const scale = bare.requestsPerSecond / anchors.bareNode;
  const anchorRow = (name: string, requestsPerSecond: number): Row => ({
    name: `${name} (anchor x ${scale.toFixed(2)})`,
    requestsPerSecond: requestsPerSecond * scale,
    p50Ms: Number.NaN,
    p99Ms: Number.NaN,
    non2xx: 0,
    errors: 0,
    rssMb: Number.NaN,
    anchor: true,
  });

  const ofWatchdog = which('of-watchdog', 'OF_WATCHDOG');
  const classic = which('classic-watchdog', 'CLASSIC_WATCHDOG');

  /** fnbus-watchdog and its OpenFaaS counterpart (or the anchor) on the same function. */
  const compare = async (
    mode: string,
    env: NodeJS.ProcessEnv,
    openfaas: { name: string; binary: string | undefined; anchor: number },
  ): Promise<[Row, Row]> => {
    const fnbus = await measure(
      `fnbus-watchdog ${mode}`,
      () => watchdog(watchdogBin, [], env),
      watchdogPort,
    );
    const { binary } = openfaas;
    const theirs = binary
      ? await measure(`${openfaas.name} ${mode}`, () => watchdog(binary, [], env), watchdogPort)
      : anchorRow(`${openfaas.name} ${mode}`, openfaas.anchor);
    rows.push(fnbus, theirs);
    return [fnbus, theirs];
  };

  const [fnbusHttp, ofHttp] = await compare('http -> node', httpEnv, {
    name: 'of-watchdog',
    binary: ofWatchdog,
    anchor: anchors.ofWatchdogHttp,
  });
  const [fnbusFork, classicFork] = await compare(
    'fork: cat',
    { fprocess: 'cat' },
    { name: 'classic watchdog', binary: classic, anchor: anchors.classicCat },
  );
  const [fnbusStreaming, ofStreaming] = await compare(
    'streaming: cat',
    { mode: 'streaming', fprocess: 'cat' },
    { name: 'of-watchdog', binary: ofWatchdog, anchor: anchors.ofWatchdogStreamingCat },
  );

  printTable(rows);
  const ratio = (a: Row, b: Row) => (a.requestsPerSecond / b.requestsPerSecond).toFixed(2);
  process.stdout.write(
    [
      '',
      `http mode:      fnbus / of-watchdog      = ${ratio(fnbusHttp, ofHttp)}x   (target >= 2x)`,
      `fork mode:      fnbus / classic watchdog = ${ratio(fnbusFork, classicFork)}x   (target >= 1x)`,
      `streaming mode: fnbus / of-watchdog      = ${ratio(fnbusStreaming, ofStreaming)}x`,
      `peak RSS under load: http ${fnbusHttp.rssMb.toFixed(1)} MB, fork ${fnbusFork.rssMb.toFixed(1)} MB (target <= 45 MB)`,
      ...(ofWatchdog && classic
        ? []
        : [
            "OpenFaaS binaries not found: their rows are anchors.md figures scaled by this run's bare-node",
            `figure (${bare.requestsPerSecond.toFixed(0)} req/s here vs ${anchors.bareNode} in the anchors).`,
          ]),
      '',
    ].join('\n'),
  );
}

function printTable(rows: Row[]): void {
  const fmt = (n: number, digits = 0) => (Number.isNaN(n) ? '-' : n.toFixed(digits));
  const lines = [
    ['case', 'req/s', 'p50 ms', 'p99 ms', 'peak RSS MB', 'errors'],
    ...rows.map((r) => [
      r.name,
      fmt(r.requestsPerSecond),
      fmt(r.p50Ms, 2),
      fmt(r.p99Ms, 2),
      fmt(r.rssMb, 1),
      r.anchor ? '-' : String(r.errors + r.non2xx),
    ]),
  ];
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  for (const line of lines) {
    process.stdout.write(
      line
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join('  ') + '\n',
    );
  }
}

await main();
