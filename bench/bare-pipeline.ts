/**
 * The async path's shape built from bare parts, without fnbus: a node:http server that puts each
 * POST on the backend and answers 202, and a consumer that POSTs each message to the function
 * (`echo-server.cjs`) with undici and acknowledges it after the answer. No call records, retries,
 * limits or callbacks. Run as its own process (`node bare-pipeline.js serve BACKEND URL PORT
 * FUNCTION_URL`), loaded by the same submitters as `fnbus up`, it is what this machine can do
 * end to end on that backend (`GET /` answers how many calls the function has answered): the ceiling for fnbus's figure, beside the bare backend's own rate.
 *
 * With `records` (a sixth argument), each call also leaves the least any design must write for a
 * status lookup after it ran: its outcome, kept (local: a row; Redis: the completed job kept for
 * the retention, by its own id; JetStream: a message on a records stream). The floor the async
 * path's guarantees set on this machine, whatever else it does.
 */
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Pool } from 'undici';

const concurrency = 128;

type Publish = (body: Buffer) => Promise<void>;

function startBullmq(
  url: string,
  call: (body: Buffer) => Promise<void>,
  records: boolean,
): Publish {
  const name = `pipeline-${randomUUID()}`;
  const queue = new Queue(name, { connection: new Redis(url, { maxRetriesPerRequest: null }) });
  new Worker<{ body: string }>(name, (job) => call(Buffer.from(job.data.body, 'base64')), {
    connection: new Redis(url, { maxRetriesPerRequest: null }),
    concurrency,
    ...(records ? { removeOnComplete: { age: 86_400 } } : {}),
  });
  return async (body) => {
    await queue.add(
      'call',
      { body: body.toString('base64') },
      records ? { jobId: randomUUID() } : { removeOnComplete: true },
    );
  };
}

/**
 * The embedded queue's shape: a SQLite file (WAL, synchronous=NORMAL, as queue/local), one row
 * written per call and deleted once answered; the consumer reads rows past the last it took.
 */
function startSqlite(call: (body: Buffer) => Promise<void>, records: boolean): Publish {
  const db = new Database(join(mkdtempSync(join(tmpdir(), 'fnbus-bare-sqlite-')), 'queue.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE calls (id INTEGER PRIMARY KEY, body BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO calls (body) VALUES (?)');
  const next = db.prepare('SELECT id, body FROM calls WHERE id > ? ORDER BY id LIMIT ?');
  db.exec('CREATE TABLE outcomes (id INTEGER PRIMARY KEY, status INTEGER NOT NULL)');
  const remove = db.prepare('DELETE FROM calls WHERE id = ?');
  const outcome = db.prepare('INSERT INTO outcomes (id, status) VALUES (?, 200)');
  let taken = 0;
  let running = 0;
  const pump = () => {
    if (running >= concurrency) return;
    const rows = next.all(taken, concurrency - running) as { id: number; body: Buffer }[];
    for (const row of rows) {
      taken = row.id;
      running += 1;
      void call(row.body).then(() => {
        remove.run(row.id);
        if (records) outcome.run(row.id);
        running -= 1;
        pump();
      });
    }
  };
  return (body) => {
    insert.run(body);
    setImmediate(pump);
    return Promise.resolve();
  };
}

async function startJetstream(
  url: string,
  call: (body: Buffer) => Promise<void>,
  records: boolean,
): Promise<Publish> {
  const nc = await connect({ servers: url, noAsyncTraces: true });
  const name = `pipeline_${randomUUID().replaceAll('-', '')}`;
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name, subjects: [`${name}.>`] });
  if (records) await jsm.streams.add({ name: `${name}_done`, subjects: [`${name}_done.>`] });
  await jsm.consumers.add(name, { durable_name: 'worker', ack_policy: AckPolicy.Explicit });
  const js = jetstream(nc);
  const messages = await (
    await js.consumers.get(name, 'worker')
  ).consume({
    max_messages: concurrency,
  });
  void (async () => {
    for await (const message of messages) {
      void call(Buffer.from(message.data))
        .then(() => (records ? js.publish(`${name}_done.${message.seq}`, '200') : undefined))
        .then(() => message.ack());
    }
  })();
  return async (body) => {
    await js.publish(`${name}.call`, body);
  };
}

async function serve(
  backend: string,
  url: string,
  port: number,
  functionUrl: string,
  records: boolean,
) {
  const fn = new Pool(functionUrl, { connections: concurrency });
  let answered = 0;
  const call = async (body: Buffer) => {
    const res = await fn.request({ method: 'POST', path: '/', body });
    await res.body.dump();
    answered += 1;
  };
  const publish =
    backend === 'local'
      ? startSqlite(call, records)
      : backend === 'redis'
        ? startBullmq(url, call, records)
        : await startJetstream(url, call, records);
  createServer((req, res) => {
    if (req.method === 'GET') {
      res.end(String(answered));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      publish(Buffer.concat(chunks)).then(
        () => res.writeHead(202, { 'X-Call-Id': randomUUID() }).end(),
        (error: Error) => res.writeHead(500).end(error.message),
      );
    });
  }).listen(port, '127.0.0.1');
}

if (process.argv[2] === 'serve') {
  const [backend, url, port, functionUrl, records] = process.argv.slice(3) as [
    string,
    string,
    string,
    string,
    string?,
  ];
  await serve(backend, url, Number(port), functionUrl, records === 'records');
}
