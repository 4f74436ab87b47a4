/**
 * Soak: `fnbus up` under a mix of good and bad calls, killed with SIGKILL midway (and its broker
 * too), then restarted: how many calls were accepted, how many ran, how many ran twice, and
 * whether the async path still drains. For each queue backend: the embedded one, Redis (BullMQ)
 * and NATS JetStream, on servers this script starts on loopback ports (test/helpers/servers.ts).
 *
 * The mix, from `SOAK_CONCURRENCY` (8) senders: async calls (`/async-function/tally`), sync calls
 * (`/function/tally`), webhooks (`/webhook/<topic>`, queued for `tally`), and bad ones: paths the
 * worker cannot replay or that do not decode, bad headers, bodies over the limits, unknown
 * functions and topics, /system without credentials or with bad bodies. `tally` appends each
 * call's X-Call-Id to a file: accepted (a 202 or 200 with its id) vs ran (in the file) vs run
 * twice. A third of the way in, the broker is killed with SIGKILL and started again on its data;
 * two thirds in, the hub is killed with SIGKILL and started again on its state folder. Then every
 * accepted call must run, and 20 fresh async calls too.
 *
 * Bounded: `SOAK_CALLS` requests per backend (1200), `SOAK_SECONDS` per backend for sending and
 * for draining each (180). Loopback only. Prints figures; not a test, never gates CI.
 *
 *   npm run soak                      (SOAK_BACKENDS=local,redis,nats by default)
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request, type HttpResult } from '../test/helpers/http.js';
import {
  ready,
  startHub,
  systemAuth,
  terminateHub,
  writeTallyStack,
  type RunningHub,
} from '../test/helpers/hub.js';
import { startNats, startRedis, type RunningServer } from '../test/helpers/servers.js';
import { waitFor } from '../test/helpers/wait.js';
import { makeTempDir } from '../test/helpers/watchdog.js';

const calls = Number(process.env.SOAK_CALLS ?? 1200);
const seconds = Number(process.env.SOAK_SECONDS ?? 180);
const concurrency = Number(process.env.SOAK_CONCURRENCY ?? 8);
const backends = (process.env.SOAK_BACKENDS ?? 'local,redis,nats').split(',');

/** What a request was, and what it should get. */
interface Kind {
  name: string;
  /** Out of 100. */
  weight: number;
  /** Where an id it gets back is counted: an async call, a sync call, or nothing. */
  counts?: 'async' | 'sync';
  expected: number[];
  send(url: string): Promise<HttpResult>;
}

const big = Buffer.alloc(2 * 1024 * 1024, 'x');
const post = (url: string, path: string, body: string | Buffer = 'soak', headers = {}) =>
  request(`${url}${path}`, { method: 'POST', body, headers, timeoutMs: 30_000 });

const kinds = (topic: string): Kind[] => [
  {
    name: 'async',
    weight: 35,
    counts: 'async',
    expected: [202],
    send: (url) => post(url, '/async-function/tally'),
  },
  {
    name: 'sync',
    weight: 20,
    counts: 'sync',
    expected: [200],
    send: (url) => post(url, '/function/tally'),
  },
  {
    name: 'webhook',
    weight: 15,
    counts: 'async',
    expected: [202],
    send: (url) => post(url, `/webhook/${topic}`, '{"event":"soak"}'),
  },
  {
    name: 'bad: path the worker cannot replay (a%20b)',
    weight: 3,
    counts: 'async',
    expected: [202, 400],
    send: (url) => post(url, '/async-function/tally/a%20b'),
  },
  {
    name: 'bad: path that does not decode (%zz)',
    weight: 3,
    expected: [400, 404],
    send: (url) => post(url, '/function/tally/%zz'),
  },
  {
    name: 'bad: X-Callback-Url not http',
    weight: 3,
    expected: [400],
    send: (url) => post(url, '/async-function/tally', 'x', { 'X-Callback-Url': 'ftp://x/' }),
  },
  {
    name: 'bad: Content-Type that does not parse',
    weight: 2,
    expected: [202, 400, 415],
    counts: 'async',
    send: (url) => post(url, '/async-function/tally', 'x', { 'Content-Type': 'garbage/;;;=' }),
  },
  {
    name: 'bad: X-Call-Id with ../ and spaces',
    weight: 2,
    counts: 'async',
    expected: [202, 400],
    send: (url) =>
      post(url, '/async-function/tally', 'x', { 'X-Call-Id': `../../soak ${randomUUID()}` }),
  },
  {
    name: 'bad: 2 MiB async body',
    weight: 2,
    expected: [413],
    send: (url) => post(url, '/async-function/tally', big),
  },
  {
    name: 'bad: 2 MiB webhook body',
    weight: 2,
    expected: [413],
    send: (url) => post(url, `/webhook/${topic}`, big),
  },
  {
    name: 'bad: unknown function (sync)',
    weight: 3,
    expected: [404],
    send: (url) => post(url, `/function/nope-${randomUUID().slice(0, 8)}`),
  },
  {
    name: 'bad: unknown function (async)',
    weight: 3,
    expected: [404],
    send: (url) => post(url, `/async-function/nope-${randomUUID().slice(0, 8)}`),
  },
  {
    name: 'bad: unknown topic',
    weight: 2,
    expected: [404],
    send: (url) => post(url, '/webhook/nobody-takes-this'),
  },
  {
    name: 'bad: /system without credentials',
    weight: 2,
    expected: [401],
    send: (url) => post(url, '/system/functions', '{}', { 'Content-Type': 'application/json' }),
  },
  {
    name: 'bad: /system bodies (scale -1, empty purge)',
    weight: 2,
    expected: [400],
    send: (url) =>
      Math.random() < 0.5
        ? post(url, '/system/scale-function/tally', '{"replicas":-1}', {
            'Content-Type': 'application/json',
            ...systemAuth,
          })
        : request(`${url}/system/dead-letters`, {
            method: 'DELETE',
            body: '{}',
            headers: { 'Content-Type': 'application/json', ...systemAuth },
          }),
  },
  {
    name: 'bad: method no route takes',
    weight: 2,
    expected: [405],
    send: (url) => request(`${url}/healthz`, { method: 'PATCH', body: 'x' }),
  },
];

interface KindFigures {
  sent: number;
  statuses: Record<string, number>;
  unexpected: number;
  /** Ids it got back with a 202 (async) or 200 (sync), and how many of them ran. */
  accepted: string[];
  ran: number;
}

interface BackendFigures {
  backend: string;
  sendSeconds: number;
  byKind: Record<string, KindFigures>;
  /** Requests in flight when the hub was killed, or sent before its restart was seen. */
  refusedWhileDown: number;
  asyncAccepted: number;
  asyncRan: number;
  asyncLost: number;
  asyncTwice: number;
  syncAnswered: number;
  syncRan: number;
  syncTwice: number;
  /** Ids in the tally that no client saw accepted (a 202 lost in a kill, say). */
  ranUnseen: number;
  drainSeconds: number;
  fresh: string;
  notes: string[];
}

const lines = (file: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];

async function soak(backend: string): Promise<BackendFigures> {
  const figures: BackendFigures = {
    backend,
    sendSeconds: 0,
    byKind: {},
    refusedWhileDown: 0,
    asyncAccepted: 0,
    asyncRan: 0,
    asyncLost: 0,
    asyncTwice: 0,
    syncAnswered: 0,
    syncRan: 0,
    syncTwice: 0,
    ranUnseen: 0,
    drainSeconds: 0,
    fresh: '',
    notes: [],
  };
  let server: RunningServer | undefined;
  if (backend === 'redis') server = await startRedis();
  else if (backend === 'nats') server = await startNats();
  else if (backend !== 'local') throw new Error(`unknown backend ${backend}`);
  const dir = makeTempDir(`fnbus-soak-${backend}-`);
  const state = join(dir, 'state');
  const tally = join(dir, 'tally.txt');
  const topic = `soak-${backend}`;
  // The tally function takes the webhook's topic too.
  const stack = writeTallyStack(dir, tally, 0.02, ['    annotations:', `      topic: ${topic}`]);
  const args = server ? ['--queue', server.url] : [];
  const env = {
    basic_auth: 'true',
    secret_mount_path: join(dir, 'no-secrets'),
    ack_wait: '2s',
    rebuild_interval: '500ms',
    max_retry_attempts: '5',
    initial_retry_wait: '200ms',
    max_retry_wait: '2s',
    upstream_timeout: '10s',
  };
  let hub: RunningHub = await startHub(['-f', stack, ...args], state, env);
  await ready(hub.url, 'tally');
  await waitFor(async () => (await post(hub.url, `/webhook/${topic}`, 'warm-up')).status === 202, {
    timeoutMs: 20_000,
    intervalMs: 200,
    what: `the topic ${topic} to be mapped`,
  });

  const mix = kinds(topic);
  const pick = () => {
    let roll = Math.random() * mix.reduce((sum, kind) => sum + kind.weight, 0);
    for (const kind of mix) if ((roll -= kind.weight) < 0) return kind;
    return mix[0]!;
  };
  const asyncIds = new Set<string>();
  const syncIds = new Set<string>();
  let sent = 0;
  /** While the hub restarts: senders wait for it rather than spend their requests on it. */
  let restarting: Promise<void> | undefined;
  let down = false;
  let brokerKilled = false;
  let hubKilled = false;
  const started = Date.now();
  const deadline = started + seconds * 1000;

  const killHub = async () => {
    down = true;
    const exited = new Promise((resolve) => hub.hub.once('exit', resolve));
    hub.hub.kill('SIGKILL');
    await exited;
    hub = await startHub(args, state, env, hub.port);
    down = false;
  };
  const notedKind = (name: string) =>
    (figures.byKind[name] ??= { sent: 0, statuses: {}, unexpected: 0, accepted: [], ran: 0 });

  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < calls && Date.now() < deadline) {
        sent++;
        if (server && !brokerKilled && sent >= calls / 3) {
          brokerKilled = true;
          figures.notes.push(`broker killed (SIGKILL) and restarted after ${sent} requests`);
          await server.restart();
        }
        if (!hubKilled && sent >= (2 * calls) / 3) {
          hubKilled = true;
          figures.notes.push(`hub killed (SIGKILL) and restarted after ${sent} requests`);
          restarting = killHub();
        }
        await restarting;
        const kind = pick();
        const tallied = notedKind(kind.name);
        tallied.sent++;
        let res: HttpResult;
        try {
          res = await kind.send(hub.url);
        } catch {
          // In flight when the hub was killed, or refused before its restart was seen.
          const status = down ? 'cut by the kill' : 'no answer';
          if (down) figures.refusedWhileDown++;
          tallied.statuses[status] = (tallied.statuses[status] ?? 0) + 1;
          if (!down) tallied.unexpected++;
          continue;
        }
        tallied.statuses[res.status] = (tallied.statuses[res.status] ?? 0) + 1;
        if (!kind.expected.includes(res.status)) tallied.unexpected++;
        const callId = res.headers['x-call-id'];
        if (typeof callId !== 'string') continue;
        if (kind.counts === 'async' && res.status === 202) asyncIds.add(callId);
        if (kind.counts === 'sync' && res.status === 200) syncIds.add(callId);
        if ((kind.counts === 'async' && res.status === 202) || res.status === 200) {
          tallied.accepted.push(callId);
        }
      }
    }),
  );
  figures.sendSeconds = Math.round((Date.now() - started) / 1000);

  const drainStarted = Date.now();
  try {
    await waitFor(
      () => {
        const ran = new Set(lines(tally));
        return [...asyncIds].every((id) => ran.has(id));
      },
      { timeoutMs: seconds * 1000, intervalMs: 250, what: 'every accepted async call to run' },
    );
  } catch {
    figures.notes.push(`the accepted async calls did not all run within ${seconds} s`);
  }
  figures.drainSeconds = Math.round((Date.now() - drainStarted) / 1000);

  const fresh = Array.from({ length: 20 }, () => `soak-fresh-${randomUUID()}`);
  let freshAccepted = 0;
  for (const id of fresh) {
    const res = await post(hub.url, '/async-function/tally', 'fresh', { 'X-Call-Id': id });
    if (res.status === 202) freshAccepted++;
  }
  try {
    await waitFor(
      () => {
        const ran = new Set(lines(tally));
        return fresh.every((id) => ran.has(id));
      },
      {
        timeoutMs: 60_000,
        intervalMs: 250,
        what: 'fresh calls to run',
      },
    );
    figures.fresh = `${freshAccepted} accepted, 20 ran`;
  } catch {
    const ran = new Set(lines(tally));
    figures.fresh = `${freshAccepted} accepted, ${fresh.filter((id) => ran.has(id)).length} ran`;
  }

  const runs = new Map<string, number>();
  for (const id of lines(tally)) runs.set(id, (runs.get(id) ?? 0) + 1);
  for (const kind of Object.values(figures.byKind)) {
    kind.ran = kind.accepted.filter((id) => runs.has(id)).length;
  }
  const freshIds = new Set(fresh);
  figures.asyncAccepted = asyncIds.size;
  figures.asyncRan = [...asyncIds].filter((id) => runs.has(id)).length;
  figures.asyncLost = figures.asyncAccepted - figures.asyncRan;
  figures.asyncTwice = [...asyncIds].filter((id) => (runs.get(id) ?? 0) > 1).length;
  figures.syncAnswered = syncIds.size;
  figures.syncRan = [...syncIds].filter((id) => runs.has(id)).length;
  figures.syncTwice = [...syncIds].filter((id) => (runs.get(id) ?? 0) > 1).length;
  figures.ranUnseen = [...runs.keys()].filter(
    (id) => !asyncIds.has(id) && !syncIds.has(id) && !freshIds.has(id),
  ).length;

  // SIGTERM, bounded; then SIGKILL whatever is left of the hub and its functions.
  const code = await terminateHub(hub.hub, state);
  if (code !== 0) {
    figures.notes.push(`SIGTERM: ${code === 'timeout' ? 'no exit within 30 s' : `exit ${code}`}`);
  }
  await server?.stop();
  return figures;
}

const results: BackendFigures[] = [];
for (const backend of backends) {
  console.log(`soak: ${backend}: ${calls} requests, ${concurrency} at once, ${seconds} s bound`);
  const figures = await soak(backend);
  results.push(figures);
  console.log(
    `\n== ${backend}: sent for ${figures.sendSeconds} s, drained in ${figures.drainSeconds} s`,
  );
  for (const note of figures.notes) console.log(`  ${note}`);
  for (const [name, kind] of Object.entries(figures.byKind)) {
    const statuses = Object.entries(kind.statuses)
      .map(([status, count]) => `${status}×${count}`)
      .join(' ');
    const flag = kind.unexpected > 0 ? `  (${kind.unexpected} unexpected)` : '';
    const ran = kind.accepted.length > 0 ? `  ran ${kind.ran}/${kind.accepted.length}` : '';
    console.log(`  ${name.padEnd(42)} ${String(kind.sent).padStart(5)}  ${statuses}${flag}${ran}`);
  }
  console.log(
    `  async (incl. webhooks): accepted ${figures.asyncAccepted}, ran ${figures.asyncRan}, ` +
      `lost ${figures.asyncLost}, ran twice ${figures.asyncTwice}`,
  );
  console.log(
    `  sync: answered 200 ${figures.syncAnswered}, ran ${figures.syncRan}, ran twice ${figures.syncTwice}`,
  );
  console.log(`  ran without a 202/200 seen (answer lost in the kill): ${figures.ranUnseen}`);
  console.log(`  requests cut by the hub's kill: ${figures.refusedWhileDown}`);
  console.log(`  after the soak, fresh async calls: ${figures.fresh}`);
}
console.log(`\nsoak: ${JSON.stringify(results.map(({ byKind: _byKind, ...figures }) => figures))}`);
