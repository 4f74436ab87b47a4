import { randomBytes } from 'node:crypto';
import { NatsQueue } from '../../queue/nats/nats-queue.js';
import { startNats } from '../helpers/servers.js';
import { asyncPathSuite } from './async-path.js';
import { unsendableCallsSuite } from './async-unsendable.js';

const subject = async () => {
  const server = await startNats();
  return {
    open: () =>
      Promise.resolve(
        new NatsQueue({ url: server.url, name: `async-${randomBytes(4).toString('hex')}` }),
      ),
    close: () => server.stop(),
  };
};
asyncPathSuite('NATS JetStream', subject);
unsendableCallsSuite('NATS JetStream', subject);
