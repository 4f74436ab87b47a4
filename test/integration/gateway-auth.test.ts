import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../core/errors.js';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { LocalQueue } from '../../queue/local/local-queue.js';
import { makeTempDir } from '../helpers/watchdog.js';

const credentials = { user: 'admin', password: 'open sesame' };
const authorization = `Basic ${Buffer.from('admin:open sesame').toString('base64')}`;

/*
 * Basic auth is on by default (OpenFaaS's default): `/system/*`, call status, cancel (both routes)
 * and dead letters need credentials; submitting an async call, function calls, /healthz and
 * /metrics do not. No worker runs here: every queued call stays queued, to be cancelled.
 */
describe('gateway: basic auth on by default', () => {
  let provider: ProcessProvider;
  let queue: LocalQueue;
  let gateway: ReturnType<typeof buildGateway>;
  const secretMountPath = makeTempDir('fnbus-gateway-auth-none-');

  /** Queues a call to `queued` (no credentials needed) and returns its id. */
  const submit = async () => {
    const res = await gateway.inject({ method: 'POST', url: '/async-function/queued', body: 'x' });
    assert.equal(res.statusCode, 202, res.body);
    return String(res.headers['x-call-id']);
  };
  const stateOf = async (callId: string) =>
    gateway
      .inject({ method: 'GET', url: `/system/calls/${callId}`, headers: { authorization } })
      .then((res) => res.json<{ state: string }>().state);

  before(async () => {
    provider = new ProcessProvider({ stateDir: makeTempDir('fnbus-gateway-auth-') });
    await provider.start();
    queue = new LocalQueue({ file: join(makeTempDir('fnbus-gateway-auth-queue-'), 'q.db') });
    // No basic_auth in the env: the default.
    gateway = buildGateway({
      provider,
      config: readConfig({ secret_mount_path: secretMountPath }),
      credentials,
      queue,
    });
    const deployed = await gateway.inject({
      method: 'POST',
      url: '/system/functions',
      headers: { authorization },
      payload: { service: 'queued', image: 'fnbus/cat', envProcess: 'cat' },
    });
    assert.equal(deployed.statusCode, 202, deployed.body);
  });
  after(async () => {
    await gateway.close();
    await queue.close();
    await provider.close();
  });

  it('is on when basic_auth is not set, and a gateway without credentials does not start', () => {
    assert.equal(readConfig({}).basicAuth, true);
    assert.equal(readConfig({ basic_auth: 'false' }).basicAuth, false);
    assert.throws(
      () => buildGateway({ provider, config: readConfig({ secret_mount_path: secretMountPath }) }),
      (error: unknown) => error instanceof ConfigError && /no credentials/.test(error.message),
    );
  });

  it('refuses /system, call status, cancel (both routes) and dead letters without credentials', async () => {
    const callId = await submit();
    for (const [method, url] of [
      ['GET', '/system/functions'],
      ['GET', '/system/info'],
      ['GET', '/system/openapi.json'],
      ['GET', `/system/calls/${callId}`],
      ['DELETE', `/system/calls/${callId}`],
      ['DELETE', `/async-function/${callId}`],
      ['GET', '/system/dead-letters'],
      ['GET', `/system/dead-letters/${callId}`],
      ['POST', '/system/dead-letters/redrive'],
    ] as const) {
      for (const headers of [{}, { authorization: 'Basic YWRtaW46d3Jvbmc=' }]) {
        const res = await gateway.inject({ method, url, headers });
        assert.equal(res.statusCode, 401, `${method} ${url} ${JSON.stringify(headers)}`);
        assert.equal(res.headers['www-authenticate'], 'Basic realm="Restricted"');
      }
    }
    assert.equal(await stateOf(callId), 'queued', 'no unauthenticated cancel got through');
  });

  it('cancels with credentials through DELETE /system/calls/:callId and the old route', async () => {
    for (const route of ['/system/calls', '/async-function']) {
      const callId = await submit();
      const res = await gateway.inject({
        method: 'DELETE',
        url: `${route}/${callId}`,
        headers: { authorization },
      });
      assert.equal(res.statusCode, 202, `${route}: ${res.body}`);
      assert.equal(await stateOf(callId), 'cancelled', route);
      const again = await gateway.inject({
        method: 'DELETE',
        url: `${route}/${callId}`,
        headers: { authorization },
      });
      assert.equal(again.statusCode, 409, route);
    }
    const unknown = await gateway.inject({
      method: 'DELETE',
      url: '/system/calls/no-such-call',
      headers: { authorization },
    });
    assert.equal(unknown.statusCode, 404);
  });

  it('leaves async submission, function calls, /healthz and /metrics open', async () => {
    await submit();
    assert.equal((await gateway.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    assert.equal((await gateway.inject({ method: 'GET', url: '/metrics' })).statusCode, 200);
    const call = await gateway.inject({ method: 'POST', url: '/function/queued', body: 'hi' });
    assert.notEqual(call.statusCode, 401);
  });

  it('documents DELETE /system/calls/{callId}, and not the old cancel route', async () => {
    const res = await gateway.inject({
      method: 'GET',
      url: '/system/openapi.json',
      headers: { authorization },
    });
    const { paths } = res.json<{ paths: Record<string, Record<string, unknown>> }>();
    assert.deepEqual(Object.keys(paths['/system/calls/{callId}']!).sort(), ['delete', 'get']);
    assert.equal(paths['/async-function/{callId}'], undefined);
    for (const [path, operations] of Object.entries(paths)) {
      if (path.startsWith('/async-function/')) assert.equal(operations.delete, undefined, path);
    }
  });
});
