import { randomBytes } from 'node:crypto';
import { BullmqQueue } from '../../queue/bullmq/bullmq-queue.js';
import { startRedis } from '../helpers/servers.js';
import { asyncPathSuite } from './async-path.js';
import { unsendableCallsSuite } from './async-unsendable.js';

const subject = async () => {
  const server = await startRedis();
  return {
    open: () =>
      Promise.resolve(
        new BullmqQueue({ url: server.url, name: `async-${randomBytes(4).toString('hex')}` }),
      ),
    close: () => server.stop(),
  };
};
asyncPathSuite('BullMQ (Redis)', subject);
unsendableCallsSuite('BullMQ (Redis)', subject);
