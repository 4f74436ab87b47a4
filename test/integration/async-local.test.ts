import { join } from 'node:path';
import { LocalQueue } from '../../queue/local/local-queue.js';
import { makeTempDir } from '../helpers/watchdog.js';
import { asyncPathSuite } from './async-path.js';

asyncPathSuite('the local queue', () =>
  Promise.resolve({
    open: (options) =>
      Promise.resolve(
        new LocalQueue({ file: join(makeTempDir('fnbus-async-local-'), 'q.db'), ...options }),
      ),
    close: () => Promise.resolve(),
  }),
);
