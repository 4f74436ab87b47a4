import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Pool } from 'undici';
import { exchange } from '../../client/exchange.js';
import { waitFor } from '../helpers/wait.js';

/** Routes: /echo answers the body; /chunks answers in three writes; /never never answers. */
function startServer(held: ServerResponse[]): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url === '/echo') {
        res.writeHead(201, { 'X-Seen': req.headers['x-sent'] ?? '', 'Set-Cookie': ['a=1', 'b=2'] });
        res.end(Buffer.concat(chunks));
      } else if (req.url === '/chunks') {
        res.write('one,');
        setTimeout(() => {
          res.write('two,');
          setTimeout(() => res.end('three'), 5);
        }, 5);
      } else {
        held.push(res);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('exchange (one HTTP exchange, read whole)', () => {
  const held: ServerResponse[] = [];
  let server: Server;
  let origin: string;
  before(async () => {
    server = await startServer(held);
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    for (const res of held) res.destroy();
    server.closeAllConnections();
    server.close();
  });

  it('answers the status, the headers (lower case, repeated ones as arrays) and the body', async () => {
    const pool = new Pool(origin);
    const answer = await exchange(pool, {
      method: 'POST',
      path: '/echo',
      headers: { 'X-Sent': 'yes' },
      body: 'hello',
    });
    assert.equal(answer.status, 201);
    assert.equal(answer.headers['x-seen'], 'yes');
    assert.deepEqual(answer.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(Buffer.from(answer.body).toString(), 'hello');
    await pool.close();
  });

  it('joins a body that comes in several pieces', async () => {
    const pool = new Pool(origin);
    const answer = await exchange(pool, { method: 'GET', path: '/chunks' });
    assert.equal(Buffer.from(answer.body).toString(), 'one,two,three');
    await pool.close();
  });

  it('rejects with a TimeoutError once its time passes, and the connection is let go', async () => {
    const pool = new Pool(origin, { connections: 1 });
    const startedAt = Date.now();
    await assert.rejects(exchange(pool, { method: 'GET', path: '/never' }, { timeoutMs: 50 }), {
      name: 'TimeoutError',
    });
    assert.ok(Date.now() - startedAt < 1000);
    // The one connection is free again: the next exchange is answered.
    const answer = await exchange(pool, { method: 'POST', path: '/echo', body: 'again' });
    assert.equal(Buffer.from(answer.body).toString(), 'again');
    await pool.close();
  });

  it('times out while waiting for a connection, and the waiting request is never sent', async () => {
    const pool = new Pool(origin, { connections: 1 });
    const heldBefore = held.length;
    const holding = exchange(pool, { method: 'GET', path: '/never' }, { timeoutMs: 300 });
    await waitFor(() => held.length === heldBefore + 1, { what: 'the first request to arrive' });
    const sentBefore = held.length;
    await assert.rejects(exchange(pool, { method: 'GET', path: '/never' }, { timeoutMs: 30 }), {
      name: 'TimeoutError',
    });
    await assert.rejects(holding, { name: 'TimeoutError' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(held.length, sentBefore, 'the second request never reached the server');
    await pool.close();
  });

  it('ends when its signal aborts, with the signal’s reason', async () => {
    const pool = new Pool(origin);
    const stop = new AbortController();
    const pending = exchange(pool, { method: 'GET', path: '/never' }, { signal: stop.signal });
    setTimeout(() => stop.abort(new Error('stopping')), 20);
    await assert.rejects(pending, { message: 'stopping' });
    await assert.rejects(
      exchange(pool, { method: 'GET', path: '/echo' }, { signal: AbortSignal.abort() }),
      { name: 'AbortError' },
    );
    await pool.close();
  });

  it('rejects when nothing listens', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const pool = new Pool(`http://127.0.0.1:${port}`);
    await assert.rejects(exchange(pool, { method: 'GET', path: '/' }, { timeoutMs: 1000 }), {
      code: 'ECONNREFUSED',
    });
    await pool.close();
  });
});
