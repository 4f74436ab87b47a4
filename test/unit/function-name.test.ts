import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ValidationError } from '../../core/errors.js';
import {
  assertDnsLabel,
  canonicalFunctionName,
  isDnsLabel,
  joinFunctionName,
  maxDnsLabelLength,
  splitFunctionName,
} from '../../core/function-name.js';

describe('splitFunctionName', () => {
  it('splits at the last dot', () => {
    assert.deepEqual(splitFunctionName('figlet.openfaas-fn'), {
      name: 'figlet',
      namespace: 'openfaas-fn',
    });
    assert.deepEqual(splitFunctionName('a.b.prod'), { name: 'a.b', namespace: 'prod' });
  });

  it('gives the default namespace when there is no dot', () => {
    assert.deepEqual(splitFunctionName('figlet'), { name: 'figlet', namespace: undefined });
    assert.deepEqual(splitFunctionName('figlet', 'openfaas-fn'), {
      name: 'figlet',
      namespace: 'openfaas-fn',
    });
  });

  it('treats a trailing dot as no namespace', () => {
    assert.deepEqual(splitFunctionName('figlet.', 'fn'), { name: 'figlet', namespace: 'fn' });
  });

  it('leaves a leading dot for validation to refuse', () => {
    const { name, namespace } = splitFunctionName('.prod');
    assert.equal(name, '');
    assert.equal(namespace, 'prod');
    assert.equal(isDnsLabel(name), false);
  });

  it('joins back', () => {
    assert.equal(joinFunctionName('figlet', 'prod'), 'figlet.prod');
    assert.equal(joinFunctionName('figlet'), 'figlet');
    assert.equal(joinFunctionName('figlet', ''), 'figlet');
    const { name, namespace } = splitFunctionName('a.b.prod');
    assert.equal(joinFunctionName(name, namespace), 'a.b.prod');
  });
});

describe('isDnsLabel', () => {
  const max = 'a'.repeat(maxDnsLabelLength);
  for (const good of ['a', '0', 'figlet', 'nodeinfo-2', 'a-b-c', '9lives', max]) {
    it(`accepts "${good.length > 20 ? `${good.length} letters` : good}"`, () => {
      assert.equal(isDnsLabel(good), true);
    });
  }
  for (const bad of ['', 'Figlet', '-a', 'a-', 'a_b', 'a.b', 'a b', 'é', `${max}a`, 'a\n']) {
    it(`refuses ${JSON.stringify(bad.length > 20 ? `${bad.length} letters` : bad)}`, () => {
      assert.equal(isDnsLabel(bad), false);
    });
  }
});

describe('assertDnsLabel', () => {
  it('passes a good name', () => {
    assert.doesNotThrow(() => assertDnsLabel('figlet'));
  });

  it('throws a 400 that names the value and says why', () => {
    assert.throws(
      () => assertDnsLabel('My_Fn'),
      (error: unknown) =>
        error instanceof ValidationError &&
        error.status === 400 &&
        error.message.includes('"My_Fn"') &&
        error.message.includes('function name') &&
        error.message.includes('lowercase'),
    );
    assert.throws(() => assertDnsLabel('x'.repeat(64), 'namespace'), /namespace .*64 characters/);
    assert.throws(() => assertDnsLabel(''), /is empty/);
  });
});

describe('canonicalFunctionName', () => {
  it('names a function of the default namespace without it, any other with it', () => {
    assert.equal(canonicalFunctionName('flaky', 'openfaas-fn'), 'flaky');
    assert.equal(canonicalFunctionName('flaky.openfaas-fn', 'openfaas-fn'), 'flaky');
    assert.equal(canonicalFunctionName('flaky.staging', 'openfaas-fn'), 'flaky.staging');
    assert.equal(canonicalFunctionName('a.b.openfaas-fn', 'openfaas-fn'), 'a.b');
  });
});
