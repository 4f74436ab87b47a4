import { createServer } from 'node:net';

/**
 * A loopback TCP port that was free a moment ago, for a template runner whose port the provider
 * chooses. Below Linux's ephemeral range (32768+), where listen(0) and outgoing connections take
 * theirs, so the port is not handed to someone else before the runner binds it.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(port)) return port;
    if (attempt > 1000) throw new Error('no free port found between 20000 and 32000');
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
