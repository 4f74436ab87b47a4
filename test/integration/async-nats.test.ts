import { randomBytes } from 'node:crypto';
import { NatsQueue } from '../../queue/nats/nats-queue.js';
import { startNats } from '../helpers/servers.js';
import { asyncPathSuite } from './async-path.js';

asyncPathSuite('NATS JetStream', async () => {
  const server = await startNats();
  return {
    open: () =>
      Promise.resolve(
        new NatsQueue({ url: server.url, name: `async-${randomBytes(4).toString('hex')}` }),
      ),
    close: () => server.stop(),
  };
});
