import { randomBytes } from 'node:crypto';
import { BullmqQueue } from '../../queue/bullmq/bullmq-queue.js';
import { startRedis } from '../helpers/servers.js';
import { asyncPathSuite, type AsyncPathSubject } from './async-path.js';
import { unsendableCallsSuite } from './async-unsendable.js';

const subject = async (): Promise<AsyncPathSubject> => {
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
};
asyncPathSuite('BullMQ (Redis)', subject);
unsendableCallsSuite('BullMQ (Redis)', subject);
