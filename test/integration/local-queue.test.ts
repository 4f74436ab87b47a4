import { join } from 'node:path';
import { LocalQueue } from '../../queue/local/local-queue.js';
import { makeTempDir } from '../helpers/watchdog.js';
import { queueContract } from './queue-contract.js';

queueContract('LocalQueue', () => {
  const file = join(makeTempDir('fnbus-local-queue-'), 'queue.db');
  return Promise.resolve({
    open: (options) => Promise.resolve(new LocalQueue({ file, ...options })),
    // Closing the database without settling is what a kill leaves: the committed state.
    abandon: (queue) => queue.close(),
    close: () => Promise.resolve(),
  });
});
