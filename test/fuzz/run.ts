/**
 * `npm run fuzz`: schemathesis (pinned, test/fuzz/requirements.txt) against a hub of its own.
 *
 * Builds nothing itself (the npm script builds first), then: installs the Python tools into
 * .bench/fuzz-venv when missing; starts `fnbus up` with basic auth on a free loopback port (an
 * `echo` and a `tally` function); fuzzes it from the OpenAPI document it serves (a copy whose
 * function-name parameters have `echo` and `tally` as examples), and from OpenFaaS's document
 * when `--openfaas-spec <path|url>` is given; checks that the async path still drains (every call
 * the fuzzing had queued finishes; fresh calls all run); stops the hub with SIGTERM. Prints the
 * figures (cases, statuses and failures by operation) and writes them to
 * .bench/fuzz/summary.json.
 *
 * Fails when fnbus answers a 5xx of its own (schemathesis's not_a_server_error, less the 5xx its
 * document says it gives by design: a 501 for a capability it lacks, and on /function/* the
 * function's own answer or 502/503/504 for a replica that failed, was missing or too slow), when
 * a request got no answer, when the async path does not drain, or when the hub does not stop.
 * The other checks' findings (schemathesis --checks all) are figures, not failures.
 *
 * Options: --openfaas-spec <path|url>, --max-time <s> (per document; default 180),
 * --max-examples <n> (default 100), --seed <n>, --workers <n> (default 2), --short (CI: 45 s).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from '../helpers/http.js';
import { hubCredentials, startHub, systemAuth, terminateHub } from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir, repoRoot } from '../helpers/watchdog.js';
import { ensureFuzzVenv } from './python.js';

const { values: options } = parseArgs({
  options: {
    'openfaas-spec': { type: 'string' },
    'max-time': { type: 'string' },
    'max-examples': { type: 'string' },
    seed: { type: 'string' },
    workers: { type: 'string', default: '2' },
    short: { type: 'boolean', default: false },
  },
});
const maxTime = options['max-time'] ?? (options.short ? '45' : '180');
const maxExamples = options['max-examples'] ?? (options.short ? '10' : '100');
const seed = options.seed ?? String(Math.floor(Math.random() * 2 ** 31));
const outDir = join(repoRoot, '.bench', 'fuzz');
mkdirSync(outDir, { recursive: true });
const log = (line: string) => console.log(`fuzz: ${line}`);

type JsonObject = Record<string, unknown>;
interface Operations {
  paths: Record<string, Record<string, { responses?: Record<string, unknown> }>>;
}
interface HarEntry {
  request: { method: string; url: string };
  response: {
    status: number;
    headers: { name: string; value: string }[];
    content?: { text?: string };
  };
}
interface Report {
  test_cases?: { generated?: number };
  failures?: { code: string; title: string; count: number; operations: string[] }[];
  errors?: { title: string; count: number }[];
  running_time?: number;
}

/** One document's run: what schemathesis reported, and what its requests got. */
interface RunFigures {
  document: string;
  seconds: number;
  cases: number;
  requests: number;
  byOperation: Record<string, { requests: number; statuses: Record<string, number> }>;
  /** Per schemathesis check code and title: the operations it failed on. */
  checks: { code: string; title: string; count: number; operations: string[] }[];
  fnbus5xx: { method: string; url: string; status: number; body: string }[];
  functions5xx: number;
  noAnswer: { method: string; url: string }[];
  errors: { title: string; count: number }[];
}

const failures: string[] = [];
const drain: { fuzzCalls?: unknown; freshCalls?: string } = {};
const stateRoot = makeTempDir('fnbus-fuzz-');
const stateDir = join(stateRoot, 'state');
const tallyFile = join(stateRoot, 'tally');
writeFileSync(tallyFile, '');
const tallyProcess = `sh -c 'echo "$Http_X_Call_Id" >> ${tallyFile}; echo done'`;
const stack = join(stateRoot, 'stack.yml');
writeFileSync(
  stack,
  [
    'provider:',
    '  name: openfaas',
    'functions:',
    '  echo:',
    '    image: fnbus/echo',
    '    fprocess: cat',
    '  tally:',
    '    image: fnbus/tally',
    `    fprocess: ${JSON.stringify(tallyProcess.replaceAll('$', '$$'))}`,
    '',
  ].join('\n'),
);

const bin = ensureFuzzVenv(log);
log(`seed ${seed}; max ${maxTime} s and ${maxExamples} examples per operation, per document`);
const hub = await startHub(['-f', stack], stateDir, {
  basic_auth: 'true',
  // Credentials from FNBUS_USERNAME/FNBUS_PASSWORD (startHub's), not from /run/secrets.
  secret_mount_path: join(stateRoot, 'no-secrets'),
  // Calls the fuzzing queued must end within the run: few, short retries; short timeouts.
  max_retry_attempts: '3',
  initial_retry_wait: '200ms',
  max_retry_wait: '1s',
  upstream_timeout: '10s',
  callback_attempts: '1',
  callback_timeout: '2s',
});
log(`hub up at ${hub.url} (state ${stateDir})`);

const served = await request(`${hub.url}/system/openapi.json`, { headers: systemAuth });
if (served.status !== 200) throw new Error(`GET /system/openapi.json: ${served.status}`);
const fnbusDoc = JSON.parse(served.text) as Operations & JsonObject;
const fuzzedDoc = withFunctionExamples(structuredClone(fnbusDoc));
const fnbusDocFile = join(outDir, 'fnbus-openapi.json');
writeFileSync(fnbusDocFile, JSON.stringify(fuzzedDoc, null, 2));

const runs: RunFigures[] = [];
const accepted = new Set<string>();
try {
  runs.push(await fuzz('fnbus', fnbusDocFile));
  const openfaas = options['openfaas-spec'];
  if (openfaas) runs.push(await fuzz('openfaas', openfaas));
  await checkDrain();
} finally {
  await stop();
}
printFigures();
writeFileSync(
  join(outDir, 'summary.json'),
  JSON.stringify({ seed, maxTime, maxExamples, runs, accepted: accepted.size, failures }, null, 2),
);
if (failures.length > 0) {
  console.log(`\nfuzz: FAILED\n  - ${failures.join('\n  - ')}`);
  process.exit(1);
}
console.log('\nfuzz: passed: no 5xx made by fnbus, every request answered, the async path drained');

/** Runs schemathesis on one document; its figures, from its JSON report and its HAR. */
async function fuzz(name: string, location: string): Promise<RunFigures> {
  const json = join(outDir, `${name}-report.json`);
  const har = join(outDir, `${name}-requests.har`);
  const output = join(outDir, `${name}-schemathesis.log`);
  log(`${name}: schemathesis on ${location} (output: ${output})`);
  const started = Date.now();
  const args = [
    'run',
    location,
    '--url',
    hub.url,
    '--auth',
    `${hubCredentials.user}:${hubCredentials.password}`,
    '--checks',
    'all',
    '--max-time',
    maxTime,
    '--max-examples',
    maxExamples,
    '--seed',
    seed,
    '--workers',
    options.workers,
    '--request-timeout',
    '30',
    '--suppress-health-check',
    'all',
    '--report',
    'json,har',
    '--report-json-path',
    json,
    '--report-har-path',
    har,
  ];
  const child = spawn(join(bin, 'schemathesis'), args, {
    cwd: outDir, // its caches (.schemathesis, .hypothesis) go there too
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', SCHEMATHESIS_HOOKS: '' },
  });
  const file = createWriteStream(output);
  child.stdout.pipe(file);
  child.stderr.pipe(file);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  log(`${name}: schemathesis exited ${code} after ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (!existsSync(json) || !existsSync(har)) {
    failures.push(`${name}: schemathesis wrote no report (exit ${code}): see ${output}`);
    return emptyFigures(name);
  }
  const report = JSON.parse(readFileSync(json, 'utf8')) as Report;
  const entries = (JSON.parse(readFileSync(har, 'utf8')) as { log: { entries: HarEntry[] } }).log
    .entries;
  const figures = emptyFigures(name);
  figures.seconds = Math.round(report.running_time ?? 0);
  figures.cases = report.test_cases?.generated ?? 0;
  figures.requests = entries.length;
  figures.checks = report.failures ?? [];
  figures.errors = report.errors ?? [];
  for (const entry of entries) {
    const url = new URL(entry.request.url);
    // By fnbus's routes, whichever document the request came from.
    const operation = `${entry.request.method} ${templateOf(fnbusDoc, url.pathname) ?? url.pathname}`;
    const tally = (figures.byOperation[operation] ??= { requests: 0, statuses: {} });
    tally.requests++;
    const status = entry.response.status;
    tally.statuses[status] = (tally.statuses[status] ?? 0) + 1;
    const header = (wanted: string) =>
      entry.response.headers.find((h) => h.name.toLowerCase() === wanted)?.value;
    const callId = header('x-call-id');
    if (status === 202 && callId && /^\/(async-function|webhook)\//.test(url.pathname)) {
      accepted.add(callId);
    }
    if (status === 0) {
      figures.noAnswer.push({ method: entry.request.method, url: entry.request.url });
    } else if (status >= 500) {
      if (byDesign(entry.request.method, url.pathname, status, callId !== undefined)) {
        figures.functions5xx++;
      } else {
        const body = (entry.response.content?.text ?? '').slice(0, 200);
        figures.fnbus5xx.push({
          method: entry.request.method,
          url: entry.request.url,
          status,
          body,
        });
      }
    }
  }
  if (figures.fnbus5xx.length > 0) {
    failures.push(`${name}: ${figures.fnbus5xx.length} answers were 5xx made by fnbus`);
  }
  if (figures.noAnswer.length > 0) {
    failures.push(`${name}: ${figures.noAnswer.length} requests got no answer (timeout or reset)`);
  }
  return figures;
}

/**
 * A 5xx fnbus's document gives by design: a 501 declared (a capability absent), and on a
 * pass-through route (one with a `default` response: /function/*, /webhook/*) a 502/503/504
 * declared, or any answer that went through the call (it carries X-Call-Id: the function's).
 */
function byDesign(method: string, path: string, status: number, viaCall: boolean): boolean {
  const operation = fnbusOperation(method, path);
  const responses = operation?.responses ?? {};
  const declared = String(status) in responses;
  if (status === 501) return declared;
  if (!('default' in responses)) return false;
  return viaCall || ([502, 503, 504].includes(status) && declared);
}

function fnbusOperation(method: string, path: string) {
  const template = templateOf(fnbusDoc, path);
  return template ? fnbusDoc.paths[template]?.[method.toLowerCase()] : undefined;
}

/** The document's path template that `path` falls under: static ones first, then fewest params. */
function templateOf(doc: Operations, path: string): string | undefined {
  const ranked = Object.keys(doc.paths)
    .map((template) => ({
      template,
      params: (template.match(/\{/g) ?? []).length,
      pattern: new RegExp(
        `^${template
          .split(/(\{\w+\})/)
          .map((part) =>
            part.startsWith('{') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
          )
          .join('')}$`,
      ),
    }))
    .sort((a, b) => a.params - b.params);
  return ranked.find((entry) => entry.pattern.test(path))?.template;
}

function emptyFigures(document: string): RunFigures {
  return {
    document,
    seconds: 0,
    cases: 0,
    requests: 0,
    byOperation: {},
    checks: [],
    fnbus5xx: [],
    functions5xx: 0,
    noAnswer: [],
    errors: [],
  };
}

/** The fuzzed copy: `echo` and `tally` as examples of the function-name parameters. */
function withFunctionExamples(doc: Operations & JsonObject): Operations & JsonObject {
  for (const [path, operations] of Object.entries(doc.paths)) {
    if (!/^\/(async-)?function\//.test(path)) continue;
    for (const operation of Object.values(operations) as { parameters?: JsonObject[] }[]) {
      for (const parameter of operation.parameters ?? []) {
        if (parameter.name === 'name' && parameter.in === 'path') {
          parameter.schema = { ...(parameter.schema as JsonObject), examples: ['echo', 'tally'] };
        }
      }
    }
  }
  return doc;
}

/**
 * Every call the fuzzing got a 202 for ends (succeeded, failed, dead-lettered or cancelled), and
 * fresh calls to `tally` all run: the async path was not wedged by what it was sent.
 */
async function checkDrain(): Promise<void> {
  const terminal = new Set(['succeeded', 'failed', 'dead-lettered', 'cancelled']);
  const pending = new Set(accepted);
  const states: Record<string, number> = {};
  log(`async: ${accepted.size} calls accepted during the fuzzing; waiting for them to end`);
  const stateOf = async (callId: string) => {
    const res = await request(`${hub.url}/system/calls/${encodeURIComponent(callId)}`, {
      headers: systemAuth,
    });
    if (res.status === 404) return 'unknown';
    if (res.status !== 200) return `status ${res.status}`;
    return (JSON.parse(res.text) as { state: string }).state;
  };
  try {
    await waitFor(
      async () => {
        for (const callId of [...pending]) {
          const state = await stateOf(callId);
          // unknown: a call id the fuzzing sent twice and whose record was replaced, or purged.
          if (terminal.has(state) || state === 'unknown') {
            pending.delete(callId);
            states[state] = (states[state] ?? 0) + 1;
          }
        }
        return pending.size === 0;
      },
      {
        timeoutMs: options.short ? 60_000 : 120_000,
        intervalMs: 500,
        what: 'the fuzzing’s calls to end',
      },
    );
  } catch {
    failures.push(`async: ${pending.size} calls accepted during the fuzzing never ended`);
  }
  log(`async: ${JSON.stringify(states)}; still pending: ${pending.size}`);
  drain.fuzzCalls = { accepted: accepted.size, ended: states, pending: [...pending].slice(0, 20) };

  // The fuzzing may have removed or changed tally: deploy it again as it was.
  const spec = JSON.stringify({ service: 'tally', image: 'fnbus/tally', envProcess: tallyProcess });
  const headers = { 'Content-Type': 'application/json', ...systemAuth };
  const put = await request(`${hub.url}/system/functions`, { method: 'PUT', headers, body: spec });
  if (put.status === 404) {
    await request(`${hub.url}/system/functions`, { method: 'POST', headers, body: spec });
  }
  await request(`${hub.url}/system/scale-function/tally`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ replicas: 1 }),
  });
  const fresh = Array.from({ length: 20 }, () => `fuzz-drain-${randomUUID()}`);
  for (const callId of fresh) {
    const res = await request(`${hub.url}/async-function/tally`, {
      method: 'POST',
      headers: { 'X-Call-Id': callId },
      body: 'drain',
    });
    if (res.status !== 202) failures.push(`async: a fresh call got ${res.status}: ${res.text}`);
  }
  try {
    await waitFor(
      () => {
        const ran = new Set(readFileSync(tallyFile, 'utf8').split('\n'));
        return fresh.every((callId) => ran.has(callId));
      },
      { timeoutMs: options.short ? 30_000 : 60_000, intervalMs: 200, what: 'fresh calls to run' },
    );
    drain.freshCalls = `${fresh.length}/${fresh.length} ran`;
  } catch {
    const ran = new Set(readFileSync(tallyFile, 'utf8').split('\n'));
    const count = fresh.filter((callId) => ran.has(callId)).length;
    drain.freshCalls = `${count}/${fresh.length} ran`;
    failures.push(`async: after the fuzzing, ${count} of ${fresh.length} fresh calls ran`);
  }
  log(`async: fresh calls: ${drain.freshCalls}`);
}

/** SIGTERM; the hub must exit 0 within 30 s (then SIGKILL, it and its functions). */
async function stop(): Promise<void> {
  const child = hub.hub;
  if (child.exitCode !== null || child.signalCode !== null) {
    failures.push(`the hub died during the run (exit ${child.exitCode ?? child.signalCode})`);
    return;
  }
  const code = await terminateHub(child, stateDir);
  if (code === 'timeout') failures.push('the hub did not stop within 30 s of SIGTERM');
  else if (code !== 0) failures.push(`the hub exited ${code} on SIGTERM`);
  writeFileSync(join(outDir, 'hub.log'), hub.output());
}

function printFigures(): void {
  for (const run of runs) {
    console.log(
      `\n== ${run.document}: ${run.cases} cases, ${run.requests} requests, ${run.seconds} s`,
    );
    const failed = new Map<string, string[]>();
    for (const check of run.checks) {
      for (const operation of check.operations) {
        const list = failed.get(operation) ?? [];
        list.push(check.code);
        failed.set(operation, list);
      }
    }
    for (const [operation, tally] of Object.entries(run.byOperation).sort()) {
      const statuses = Object.entries(tally.statuses)
        .map(([status, count]) => `${status}×${count}`)
        .join(' ');
      const checks = failed.get(operation);
      console.log(
        `  ${operation.padEnd(44)} ${String(tally.requests).padStart(5)}  ${statuses}${checks ? `  [${checks.join(' ')}]` : ''}`,
      );
    }
    console.log('  schemathesis checks that failed (code, title: operations):');
    for (const check of run.checks) {
      console.log(
        `    ${check.code} ${check.title} ×${check.count}: ${check.operations.join(', ')}`,
      );
    }
    if (run.errors.length > 0) console.log(`  errors: ${JSON.stringify(run.errors)}`);
    console.log(`  5xx by design (501, or a function's): ${run.functions5xx}`);
    console.log(`  5xx made by fnbus: ${run.fnbus5xx.length}`);
    for (const answer of run.fnbus5xx.slice(0, 10)) {
      console.log(`    ${answer.status} ${answer.method} ${answer.url}: ${answer.body}`);
    }
    console.log(`  no answer: ${run.noAnswer.length}`);
    for (const entry of run.noAnswer.slice(0, 10)) console.log(`    ${entry.method} ${entry.url}`);
  }
  console.log(`\n== async path: ${JSON.stringify(drain)}`);
}
