import { join } from 'node:path';
import { LocalQueue } from '../../queue/local/local-queue.js';
import { makeTempDir } from '../helpers/watchdog.js';
import { asyncPathSuite, type AsyncPathSubject } from './async-path.js';
import { unsendableCallsSuite } from './async-unsendable.js';

const subject = (): Promise<AsyncPathSubject> =>
  Promise.resolve({
    open: (options) =>
      Promise.resolve(
        new LocalQueue({ file: join(makeTempDir('fnbus-async-local-'), 'q.db'), ...options }),
      ),
    close: () => Promise.resolve(),
  });
asyncPathSuite('the local queue', subject);
unsendableCallsSuite('the local queue', subject);
