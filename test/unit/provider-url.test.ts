import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '../../core/errors.js';
import { providerKind } from '../../deploy/open-provider.js';

describe('provider URLs', () => {
  it('names the provider: process by default, kubernetes:// (or kubernetes), http(s)://', () => {
    assert.equal(providerKind(undefined), 'process');
    assert.equal(providerKind('process'), 'process');
    assert.equal(providerKind('kubernetes'), 'kubernetes');
    assert.equal(providerKind('kubernetes://'), 'kubernetes');
    assert.equal(providerKind('kubernetes://?context=prod&namespace=fns'), 'kubernetes');
    assert.equal(providerKind('http://faas-netes.openfaas:8081'), 'http');
  });

  it('refuses what it cannot open, saying why, never showing credentials', () => {
    assert.throws(() => providerKind('kubernetes://cluster.example.com'), /takes no host or path/);
    assert.throws(() => providerKind('swarm://manager:2377'), /not available yet/);
    assert.throws(
      () => providerKind('ftp://user:hunter2@example.com/'),
      (error: Error) => error instanceof ValidationError && !error.message.includes('hunter2'),
    );
  });
});
