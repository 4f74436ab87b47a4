import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { replicaExchange } from '../../cli/replica-exchange.js';
import { UpstreamClient } from '../../watchdog/upstream-client.js';

/** A function process's HTTP server, as a replica's upstream: each path answers its own way. */
let server: Server;
let client: UpstreamClient;

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      if (req.url === '/cookies') {
        res.setHeader('Set-Cookie', ['a=1', 'b=2']);
        res.end('two');
      } else if (req.url === '/chunked') {
        res.write('one,');
        setTimeout(() => res.end('two'), 10);
      } else if (req.url === '/slow') {
        setTimeout(() => res.end('late'), 2000).unref();
      } else {
        res.writeHead(201, { 'X-Seen': `${req.method} ${String(req.headers['x-call-id'])}` });
        res.end(body);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  client = new UpstreamClient(new URL(`http://127.0.0.1:${port}`));
});

after(() => {
  client.close();
  server.closeAllConnections();
  server.close();
});

const post = (path: string, body: string | null = null) => ({
  method: 'POST',
  path,
  headers: ['X-Call-Id', 'abc'],
  body: body === null ? null : Buffer.from(body),
});

describe('replicaExchange', () => {
  it('reads the answer whole: status, headers in lower case, body', async () => {
    const answer = await replicaExchange(client, post('/', 'hello'));
    assert.equal(answer.status, 201);
    assert.equal(answer.headers['x-seen'], 'POST abc');
    assert.equal(Buffer.from(answer.body).toString(), 'hello');
  });

  it('keeps a header sent twice as a list, and joins a chunked body', async () => {
    const cookies = await replicaExchange(client, post('/cookies'));
    assert.deepEqual(cookies.headers['set-cookie'], ['a=1', 'b=2']);
    const chunked = await replicaExchange(client, post('/chunked'));
    assert.equal(Buffer.from(chunked.body).toString(), 'one,two');
  });

  it('rejects at its timeout (TimeoutError) and at its signal (the reason), and goes on after', async () => {
    await assert.rejects(replicaExchange(client, post('/slow'), { timeoutMs: 50 }), {
      name: 'TimeoutError',
    });
    const stop = new AbortController();
    setTimeout(() => stop.abort(new Error('stopping')), 50);
    await assert.rejects(replicaExchange(client, post('/slow'), { signal: stop.signal }), {
      message: 'stopping',
    });
    await assert.rejects(replicaExchange(client, post('/'), { signal: stop.signal }), {
      message: 'stopping',
    });
    assert.equal((await replicaExchange(client, post('/', 'again'))).status, 201);
  });

  it('rejects when nothing listens', async () => {
    const nobody = new UpstreamClient(new URL('http://127.0.0.1:1'));
    await assert.rejects(replicaExchange(nobody, post('/')), { code: 'ECONNREFUSED' });
    nobody.close();
  });
});
