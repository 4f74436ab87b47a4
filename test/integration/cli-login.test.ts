import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { ProcessProvider } from '../../deploy/process/process-provider.js';
import { buildGateway } from '../../gateway/app.js';
import { readConfig } from '../../gateway/config.js';
import { LocalQueue } from '../../queue/local/local-queue.js';
import { runCli } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import { makeTempDir } from '../helpers/watchdog.js';

const password = 'open sesame';
const token = Buffer.from(`admin:${password}`).toString('base64');
const authorization = `Basic ${token}`;

interface ConfigFile {
  auths: { gateway: string; auth: string; token: string; options?: unknown[] }[];
}

/*
 * `fnbus login` / `logout` with faas-cli's flags, against a gateway with basic auth on (the
 * default), and the login's use by the other commands: faas-cli's config file, found through
 * OPENFAAS_CONFIG (each test a folder of its own), no other credentials given.
 */
describe('fnbus login, logout, and the commands that use the login', () => {
  let provider: ProcessProvider;
  let queue: LocalQueue;
  let gateway: ReturnType<typeof buildGateway>;
  let url: string;

  before(async () => {
    provider = new ProcessProvider({ stateDir: makeTempDir('fnbus-cli-login-') });
    await provider.start();
    // No worker: queued calls stay queued, for `fnbus cancel`.
    queue = new LocalQueue({ file: join(makeTempDir('fnbus-cli-login-queue-'), 'q.db') });
    gateway = buildGateway({
      provider,
      config: readConfig({ secret_mount_path: makeTempDir('fnbus-cli-login-none-') }),
      credentials: { user: 'admin', password },
      queue,
    });
    await gateway.listen({ port: 0, host: '127.0.0.1' });
    const address = gateway.server.address();
    assert.ok(address && typeof address === 'object');
    url = `http://127.0.0.1:${address.port}`;
    const deployed = await request(`${url}/system/functions`, {
      method: 'POST',
      headers: { authorization, 'Content-Type': 'application/json' },
      body: JSON.stringify({ service: 'kept', image: 'fnbus/cat', envProcess: 'cat' }),
    });
    assert.equal(deployed.status, 202, deployed.text);
  });
  after(async () => {
    await gateway.close();
    await queue.close();
    await provider.close();
  });

  it('logs in with --password-stdin, keeps faas-cli’s config (0600), and list needs nothing else', async () => {
    const config = makeTempDir('fnbus-openfaas-config-');
    const env = { OPENFAAS_CONFIG: config };
    const before = await runCli(['list', '--gateway', url], env);
    assert.equal(before.code, 1);
    assert.match(before.stderr, /401.*fnbus login/);

    const login = await runCli(
      ['login', '--username', 'admin', '--password-stdin', '--gateway', `${url}/`],
      env,
      `${password}\n`,
    );
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, new RegExp(`credentials saved for admin ${url}`));
    assert.ok(!login.stdout.includes(password) && !login.stderr.includes(password));
    const file = join(config, 'config.yml');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(config).mode & 0o777, 0o700);
    // faas-cli's format: the gateway without its trailing slash, auth basic, base64 user:password.
    assert.deepEqual(parse(readFileSync(file, 'utf8')), {
      auths: [{ gateway: url, auth: 'basic', token }],
    });

    const list = await runCli(['list', '--gateway', url], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /kept/);
    // Found whatever way the gateway is given: env, a trailing slash, upper case (faas-cli's key).
    for (const viaEnv of [{ OPENFAAS_URL: `${url}/` }, { FNBUS_GATEWAY: url.toUpperCase() }]) {
      const res = await runCli(['list'], { ...env, ...viaEnv });
      assert.equal(res.code, 0, `${JSON.stringify(viaEnv)}: ${res.stderr}`);
    }
    // Flags and env still win over the saved login.
    const flags = await runCli(['list', '-g', url, '--username', 'admin', '--password', 'no'], env);
    assert.equal(flags.code, 1);
    assert.match(flags.stderr, /401/);
    // Another gateway's login is not sent here.
    const elsewhere = await runCli(['list', '-g', 'http://127.0.0.1:1'], env);
    assert.match(elsewhere.stderr, /cannot reach/);

    const logout = await runCli(['logout', '--gateway', url], env);
    assert.equal(logout.code, 0, logout.stderr);
    assert.equal(logout.stdout, `credentials removed for ${url}\n`);
    assert.deepEqual(parse(readFileSync(file, 'utf8')), { auths: [] });
    assert.equal((await runCli(['list', '--gateway', url], env)).code, 1);
    const twice = await runCli(['logout', '--gateway', url], env);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /no credentials are kept/);
  });

  it('refuses a wrong password with a non-zero exit, saving nothing', async () => {
    const config = makeTempDir('fnbus-openfaas-config-');
    const wrong = await runCli(
      ['login', '-u', 'admin', '--password-stdin', '-g', url],
      { OPENFAAS_CONFIG: config },
      'not it\n',
    );
    assert.equal(wrong.code, 1);
    assert.equal(wrong.stderr, `fnbus: cannot log in to ${url}: wrong user or password (401)\n`);
    assert.throws(() => statSync(join(config, 'config.yml')), /ENOENT/);
    const wrongUser = await runCli(['login', '-u', 'root', '-p', password, '-g', url], {
      OPENFAAS_CONFIG: config,
    });
    assert.equal(wrongUser.code, 1);
    const empty = await runCli(
      ['login', '--password-stdin', '-g', url],
      { OPENFAAS_CONFIG: config },
      '\n',
    );
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /non-empty password/);
    const both = await runCli(
      ['login', '-p', password, '--password-stdin', '-g', url],
      { OPENFAAS_CONFIG: config },
      password,
    );
    assert.equal(both.code, 1);
    assert.match(both.stderr, /mutually exclusive/);
    const down = await runCli(['login', '-p', password, '-g', 'http://127.0.0.1:1'], {
      OPENFAAS_CONFIG: config,
    });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach the gateway/);
  });

  it('keeps the other gateways’ entries faas-cli wrote, and replaces its own', async () => {
    const config = makeTempDir('fnbus-openfaas-config-');
    mkdirSync(config, { recursive: true });
    const other = {
      gateway: 'https://faas.example.com',
      auth: 'oauth2',
      token: 'abc',
      options: [{ name: 'x', value: 'y' }],
    };
    writeFileSync(
      join(config, 'config.yml'),
      `auths:\n- gateway: https://faas.example.com\n  auth: oauth2\n  token: abc\n  options:\n  - name: x\n    value: "y"\n- gateway: ${url}\n  auth: basic\n  token: b2xkOm9sZA==\n`,
    );
    // -p works too (with a warning), and -u defaults to admin, as faas-cli's.
    const login = await runCli(['login', '-p', password, '-g', url], { OPENFAAS_CONFIG: config });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stderr, /warning: --password/);
    const saved = parse(readFileSync(join(config, 'config.yml'), 'utf8')) as ConfigFile;
    assert.deepEqual(saved.auths, [other, { gateway: url, auth: 'basic', token }]);
    assert.equal(statSync(join(config, 'config.yml')).mode & 0o777, 0o600);
  });

  it('cancel, call and dlq use the saved login; cancel goes to DELETE /system/calls/:callId', async () => {
    const config = makeTempDir('fnbus-openfaas-config-');
    const env = { OPENFAAS_CONFIG: config, FNBUS_GATEWAY: url };
    const login = await runCli(['login', '--password-stdin'], env, password);
    assert.equal(login.code, 0, login.stderr);
    const queued = await runCli(['invoke', 'kept', '--async'], env, 'later');
    assert.equal(queued.code, 0, queued.stderr);
    const callId = queued.stdout.trim();
    const shown = await runCli(['call', callId], env);
    assert.match(shown.stdout, /State:\s+queued/);
    const cancelled = await runCli(['cancel', callId], env);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal(cancelled.stdout, `cancelled ${callId}\n`);
    assert.match((await runCli(['call', callId], env)).stdout, /State:\s+cancelled/);
    const again = await runCli(['cancel', callId], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /409.*cannot be cancelled/);
    const dlq = await runCli(['dlq', 'list'], env);
    assert.equal(dlq.code, 0, dlq.stderr);
    const topics = await runCli(['topics'], env);
    assert.equal(topics.code, 0, topics.stderr);
  });
});
