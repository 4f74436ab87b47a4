import { randomBytes } from 'node:crypto';
import { BullmqQueue } from '../../queue/bullmq/bullmq-queue.js';
import { startRedis } from '../helpers/servers.js';
import { asyncPathSuite } from './async-path.js';

asyncPathSuite('BullMQ (Redis)', async () => {
  const server = await startRedis();
  return {
    open: (options) =>
      Promise.resolve(
        new BullmqQueue({
          url: server.url,
          name: `async-${randomBytes(4).toString('hex')}`,
          ...options,
        }),
      ),
    close: () => server.stop(),
  };
});
