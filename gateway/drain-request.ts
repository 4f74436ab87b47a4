import type { IncomingMessage } from 'node:http';

/** The most of a refused body read and dropped, and for how long, before the refusal is sent. */
const drainBytes = 64 * 1024 * 1024;
const drainMs = 5000;

/**
 * Reads and drops what is left of a request's body before it is refused: a client still sending
 * a body the gateway will not take (413, 415...) would otherwise see the connection closed under
 * it and report a reset, not the answer. Past the bounds the answer goes anyway and the
 * connection is closed, as for any refused request.
 */
export function drainRequest(req: IncomingMessage): Promise<void> {
  // readableEnded: a body read to its end by a request that is not node's (fastify's inject).
  if (req.complete || req.readableEnded || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let seen = 0;
    const done = () => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', done);
      req.off('error', done);
      req.off('close', done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > drainBytes) done();
    };
    const timer = setTimeout(done, drainMs);
    req.on('data', onData);
    req.once('end', done);
    req.once('error', done);
    req.once('close', done);
    req.resume();
  });
}
