import { randomBytes } from 'node:crypto';
import { NatsQueue } from '../../queue/nats/nats-queue.js';
import { startNats } from '../helpers/servers.js';
import { asyncPathSuite, type AsyncPathSubject } from './async-path.js';
import { unsendableCallsSuite } from './async-unsendable.js';

const subject = async (): Promise<AsyncPathSubject> => {
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
};
asyncPathSuite('NATS JetStream', subject);
unsendableCallsSuite('NATS JetStream', subject);
