import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NotStartedError, StorageError } from '../../core/errors.js';
import type { Provider } from '../../core/provider.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { baseProvider } from '../helpers/providers.js';
import { makeTempDir } from '../helpers/watchdog.js';

/**
 * Errors answer HTTP in one place (core/errors.ts httpAnswer): a named fnbus error with its own
 * status and message, on /system and invoke routes alike; anything else a bare 500 that names
 * no file of this machine and carries no stack.
 */
describe('gateway: errors to HTTP', () => {
  let provider: ProcessProvider;
  let failure: () => Error;
  let gateway: ReturnType<typeof buildGateway>;

  before(async () => {
    provider = new ProcessProvider({ stateDir: makeTempDir('fnbus-gateway-errors-') });
    await provider.start();
    // The process provider, whose list and resolve fail as `failure` says.
    const failing: Provider = {
      ...baseProvider(provider),
      list: () => Promise.reject(failure()),
      get: () => Promise.reject(failure()),
      resolve: () => Promise.reject(failure()),
    };
    gateway = buildGateway({ provider: failing, config: readConfig({ basic_auth: 'false' }) });
    await gateway.ready();
  });
  after(async () => {
    await gateway.close();
    await provider.close();
  });

  it('a plain Error is a 500 that says nothing of where', async () => {
    failure = () => new Error("EACCES: permission denied, open '/home/ada/.local/state/fnbus/x'");
    for (const url of ['/system/functions', '/system/function/hello', '/function/hello']) {
      const res = await gateway.inject({
        method: url.startsWith('/function') ? 'POST' : 'GET',
        url,
      });
      assert.equal(res.statusCode, 500, url);
      assert.equal(res.body, 'internal error\n', url);
    }
  });

  it('a named error answers with its status and message', async () => {
    failure = () => new StorageError('listing functions: ENOSPC');
    const listed = await gateway.inject({ method: 'GET', url: '/system/functions' });
    assert.equal(listed.statusCode, 500);
    assert.equal(listed.body, 'listing functions: ENOSPC\n');
    failure = () => new NotStartedError('function "hello" is not started: no such command');
    const called = await gateway.inject({ method: 'POST', url: '/function/hello' });
    assert.equal(called.statusCode, 503);
    assert.equal(called.body, 'function "hello" is not started: no such command\n');
  });
});
