import type { Server } from 'node:http';
import { listenError } from '../core/errors.js';

/**
 * `server.listen(port, host)` as a promise that rejects, rather than emitting an `error` event
 * nobody handles: a port in use is a ListenError (`port 8081 on every address is in use`).
 */
export function listen(server: Server, port: number, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (error: Error) => reject(listenError(error) ?? error);
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
}
