import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generatedPasswordFile, hubCredentials } from '../../cli/hub-credentials.js';
import { isLoopback } from '../../cli/listen-host.js';
import { ConfigError } from '../../core/errors.js';
import { makeTempDir } from '../helpers/watchdog.js';

const on = (secretMountPath = makeTempDir('fnbus-no-secrets-')) => ({
  basicAuth: true,
  secretMountPath,
});

describe('hubCredentials (fnbus up)', () => {
  it('makes a strong password for admin on the first start, 0600 in a 0700 folder, and reuses it', () => {
    const state = makeTempDir('fnbus-state-');
    const first = hubCredentials(on(), {}, state);
    const file = generatedPasswordFile(state);
    assert.equal(first.generated, true);
    assert.equal(first.passwordFile, file);
    assert.equal(first.credentials?.user, 'admin');
    const password = first.credentials?.password ?? '';
    assert.match(password, /^[A-Za-z0-9_-]{32}$/);
    assert.equal(readFileSync(file, 'utf8'), `${password}\n`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(state, 'auth')).mode & 0o777, 0o700);

    const second = hubCredentials(on(), {}, state);
    assert.equal(second.generated, false);
    assert.deepEqual(second.credentials, first.credentials);
    // Another hub's state folder gets a password of its own.
    const other = hubCredentials(on(), {}, makeTempDir('fnbus-state-'));
    assert.notEqual(other.credentials?.password, password);
  });

  it('narrows a kept password file and folder that became readable by others', () => {
    const state = makeTempDir('fnbus-state-');
    const { credentials } = hubCredentials(on(), {}, state);
    chmodSync(generatedPasswordFile(state), 0o644);
    chmodSync(join(state, 'auth'), 0o755);
    assert.deepEqual(hubCredentials(on(), {}, state).credentials, credentials);
    assert.equal(statSync(generatedPasswordFile(state)).mode & 0o777, 0o600);
    assert.equal(statSync(join(state, 'auth')).mode & 0o777, 0o700);
  });

  it('replaces an empty password file', () => {
    const state = makeTempDir('fnbus-state-');
    mkdirSync(join(state, 'auth'));
    writeFileSync(generatedPasswordFile(state), '\n');
    const made = hubCredentials(on(), {}, state);
    assert.equal(made.generated, true);
    assert.match(readFileSync(generatedPasswordFile(state), 'utf8'), /^[A-Za-z0-9_-]{32}\n$/);
  });

  it('takes secret_mount_path files first, then FNBUS_USERNAME / FNBUS_PASSWORD; makes nothing then', () => {
    const state = makeTempDir('fnbus-state-');
    const secrets = makeTempDir('fnbus-secrets-');
    writeFileSync(join(secrets, 'basic-auth-user'), 'ops\n');
    writeFileSync(join(secrets, 'basic-auth-password'), 'from-file\n');
    const env = { FNBUS_USERNAME: 'envuser', FNBUS_PASSWORD: 'from-env' };
    assert.deepEqual(hubCredentials(on(secrets), env, state), {
      credentials: { user: 'ops', password: 'from-file' },
    });
    assert.deepEqual(hubCredentials(on(), env, state), {
      credentials: { user: 'envuser', password: 'from-env' },
    });
    assert.deepEqual(hubCredentials(on(), { FNBUS_PASSWORD: 'p' }, state).credentials, {
      user: 'admin',
      password: 'p',
    });
    assert.throws(() => hubCredentials(on(), { FNBUS_USERNAME: 'bob' }, state), ConfigError);
    assert.throws(() => statSync(join(state, 'auth')), /ENOENT/);
  });

  it('has none, and makes none, with basic_auth off', () => {
    const state = makeTempDir('fnbus-state-');
    const secrets = makeTempDir('fnbus-no-secrets-');
    assert.deepEqual(hubCredentials({ basicAuth: false, secretMountPath: secrets }, {}, state), {
      credentials: undefined,
    });
    assert.throws(() => statSync(join(state, 'auth')), /ENOENT/);
  });
});

describe('isLoopback', () => {
  it('tells this machine’s addresses from the network’s', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1'])
      assert.equal(isLoopback(host), true, host);
    for (const host of ['0.0.0.0', '::', '', '10.0.0.1', '192.168.1.2', 'example.com'])
      assert.equal(isLoopback(host), false, host);
  });
});
