import assert from 'node:assert/strict';
import { readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import {
  lookupCredentials,
  normaliseGateway,
  openFaasConfigFile,
  removeCredentials,
  saveCredentials,
} from '../../client/openfaas-config.js';
import { ConfigError } from '../../core/errors.js';
import { makeTempDir } from '../helpers/watchdog.js';

describe("faas-cli's config file (client/openfaas-config.ts)", () => {
  it('is found where faas-cli finds it: OPENFAAS_CONFIG, .openfaas on CI, else ~/.openfaas', () => {
    assert.equal(openFaasConfigFile({ OPENFAAS_CONFIG: '/x/y', HOME: '/h' }), '/x/y/config.yml');
    assert.equal(openFaasConfigFile({ OPENFAAS_CONFIG: '~/cfg', HOME: '/h' }), '/h/cfg/config.yml');
    assert.equal(openFaasConfigFile({ HOME: '/h' }), '/h/.openfaas/config.yml');
    assert.equal(openFaasConfigFile({ HOME: '/h', CI: 'true' }), resolve('.openfaas/config.yml'));
    assert.equal(
      openFaasConfigFile({ HOME: '/h', CI: '1', OPENFAAS_CONFIG: '/o' }),
      '/o/config.yml',
    );
  });

  it('keys gateways as faas-cli does', () => {
    assert.equal(normaliseGateway('http://127.0.0.1:8080/'), 'http://127.0.0.1:8080');
    assert.equal(normaliseGateway('HTTPS://Faas.Example.com//'), 'https://faas.example.com');
    assert.equal(normaliseGateway('127.0.0.1:8080'), 'http://127.0.0.1:8080');
  });

  it('saves, finds, replaces and removes basic-auth entries, through a symlinked file too', () => {
    const dir = makeTempDir('fnbus-openfaas-config-');
    const real = join(makeTempDir('fnbus-dotfiles-'), 'config.yml');
    writeFileSync(real, '');
    symlinkSync(real, join(dir, 'config.yml'));
    const env = { OPENFAAS_CONFIG: dir };
    assert.equal(lookupCredentials('http://127.0.0.1:8080', env), undefined);
    saveCredentials('http://127.0.0.1:8080/', { user: 'admin', password: 'a:b c' }, env);
    saveCredentials('http://other:8080', { user: 'u', password: 'p' }, env);
    saveCredentials('http://127.0.0.1:8080', { user: 'admin', password: 'new:one' }, env);
    assert.deepEqual(lookupCredentials('HTTP://127.0.0.1:8080/', env), {
      user: 'admin',
      password: 'new:one',
    });
    assert.equal(
      readFileSync(real, 'utf8'),
      'auths:\n' +
        '  - gateway: http://127.0.0.1:8080\n' +
        '    auth: basic\n' +
        `    token: ${Buffer.from('admin:new:one').toString('base64')}\n` +
        '  - gateway: http://other:8080\n' +
        '    auth: basic\n' +
        `    token: ${Buffer.from('u:p').toString('base64')}\n`,
    );
    assert.equal(statSync(real).mode & 0o777, 0o600);
    assert.equal(removeCredentials('http://127.0.0.1:8080', env), true);
    assert.equal(removeCredentials('http://127.0.0.1:8080', env), false);
    assert.equal(lookupCredentials('http://127.0.0.1:8080', env), undefined);
    assert.deepEqual(lookupCredentials('http://other:8080', env), { user: 'u', password: 'p' });
  });

  it('ignores entries of other kinds, and says what is wrong with a broken file', () => {
    const dir = makeTempDir('fnbus-openfaas-config-');
    const env = { OPENFAAS_CONFIG: dir };
    writeFileSync(
      join(dir, 'config.yml'),
      'auths:\n- gateway: http://a\n  auth: oauth2\n  token: t\n',
    );
    assert.equal(lookupCredentials('http://a', env), undefined);
    writeFileSync(join(dir, 'config.yml'), 'auths: [oops');
    assert.throws(() => lookupCredentials('http://a', env), ConfigError);
    writeFileSync(join(dir, 'config.yml'), 'auths: 3\n');
    assert.throws(() => lookupCredentials('http://a', env), /auths must be a list/);
  });
});
