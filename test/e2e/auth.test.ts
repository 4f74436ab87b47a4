import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { request } from '../helpers/http.js';
import { startHub, stopHub } from '../helpers/hub.js';
import { makeTempDir } from '../helpers/watchdog.js';

/** An IPv4 address of this machine other than loopback; undefined when it has none. */
function networkAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((address) => address && address.family === 'IPv4' && !address.internal)?.address;
}

/** Whether a TCP connection to host:port is taken (true) or refused (false). */
function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (error: NodeJS.ErrnoException) =>
      error.code === 'ECONNREFUSED' ? resolve(false) : reject(error),
    );
  });
}

/** No credentials at all: neither env nor files. */
const noCredentials = () => ({
  FNBUS_USERNAME: '',
  FNBUS_PASSWORD: '',
  secret_mount_path: makeTempDir('fnbus-no-secrets-'),
});

describe('fnbus up: secure by default', () => {
  it('makes a password on the first start, says once how to log in, and keeps it', async () => {
    const state = join(makeTempDir('fnbus-auth-'), 'state');
    const env = noCredentials();
    const first = await startHub(['--connectors', 'none'], state, env);
    const file = join(state, 'auth', 'basic-auth-password');
    let password: string;
    try {
      password = readFileSync(file, 'utf8').trim();
      assert.match(password, /^[A-Za-z0-9_-]{32}$/);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(join(state, 'auth')).mode & 0o777, 0o700);
      const hint = `cat ${file} | fnbus login --username admin --password-stdin --gateway ${first.url}`;
      assert.equal(first.output().split(hint).length, 2, `the hint, once: ${first.output()}`);
      assert.ok(!first.output().includes(password), 'the password is never logged');

      const basic = `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;
      for (const [method, path] of [
        ['GET', '/system/functions'],
        ['GET', '/system/calls/some-call'],
        ['DELETE', '/system/calls/some-call'],
        ['DELETE', '/async-function/some-call'],
        ['GET', '/system/dead-letters'],
      ] as const) {
        const refused = await request(`${first.url}${path}`, { method });
        assert.equal(refused.status, 401, `${method} ${path}`);
        const allowed = await request(`${first.url}${path}`, {
          method,
          headers: { Authorization: basic },
        });
        assert.notEqual(allowed.status, 401, `${method} ${path} with the password`);
      }
      assert.equal((await request(`${first.url}/healthz`)).status, 200);

      // The hint works as printed: the file into fnbus login, then the CLI needs nothing else.
      const config = { OPENFAAS_CONFIG: makeTempDir('fnbus-openfaas-config-') };
      const login = await runCli(
        ['login', '--username', 'admin', '--password-stdin', '--gateway', first.url],
        config,
        readFileSync(file),
      );
      assert.equal(login.code, 0, login.stderr);
      const list = await runCli(['list', '--gateway', first.url], config);
      assert.equal(list.code, 0, list.stderr);
    } finally {
      await stopHub(first.hub);
    }

    const second = await startHub(['--connectors', 'none'], state, env, first.port);
    try {
      assert.equal(readFileSync(file, 'utf8').trim(), password, 'the same password');
      assert.ok(!second.output().includes('fnbus login'), 'said once, not at every start');
      const basic = `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;
      const res = await request(`${second.url}/system/functions`, {
        headers: { Authorization: basic },
      });
      assert.equal(res.status, 200);
    } finally {
      await stopHub(second.hub);
    }
  });

  it('listens on 127.0.0.1 unless told: the machine’s network address is refused', async (t) => {
    const address = networkAddress();
    if (!address) {
      t.skip('this machine has no network address but loopback');
      return;
    }
    const running = await startHub(
      ['--connectors', 'none'],
      join(makeTempDir('fnbus-auth-'), 'state'),
    );
    const { url, port } = running;
    try {
      assert.equal((await request(`${url}/healthz`)).status, 200);
      assert.equal(await connects(address, port), false, `${address}:${port} refused`);
      assert.ok(!running.output().includes('basic_auth is off'));
    } finally {
      await stopHub(running.hub);
    }
  });

  it('warns when it listens on the network without auth (--host 0.0.0.0, basic_auth=false)', async () => {
    const running = await startHub(
      ['--connectors', 'none', '--host', '0.0.0.0'],
      join(makeTempDir('fnbus-auth-'), 'state'),
      { basic_auth: 'false' },
    );
    try {
      assert.match(running.output(), /"level":40.*basic_auth is off: anyone on the network/);
      // Open indeed, as asked.
      assert.equal((await request(`${running.url}/system/functions`)).status, 200);
      const address = networkAddress();
      if (address) assert.equal(await connects(address, running.port), true);
    } finally {
      await stopHub(running.hub);
    }
  });
});
