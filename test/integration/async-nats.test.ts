import { randomBytes } from 'node:crypto';
import { NatsQueue } from '../../queue/nats/nats-queue.js';
import { startNats } from '../helpers/servers.js';
import { asyncPathSuite } from './async-path.js';

asyncPathSuite('NATS JetStream', async () => {
  const server = await startNats();
  return {
    open: (options) =>
      Promise.resolve(
        new NatsQueue({
          url: server.url,
          name: `async-${randomBytes(4).toString('hex')}`,
          ...options,
        }),
      ),
    close: () => server.stop(),
    // A request travels as one message: the server's max_payload (1 MiB) less room for the record.
    letterBytes: 700 * 1024,
  };
});
