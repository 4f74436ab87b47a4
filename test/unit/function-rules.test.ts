import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '../../core/errors.js';
import { normalizeDeployment } from '../../core/function-deployment.js';
import {
  alertReplicas,
  functionTimeoutMs,
  queueMaxInflight,
  ruleProblems,
  scaleRules,
  topicsOf,
  wakeReplicas,
} from '../../core/function-rules.js';

describe('function rules', () => {
  it('reads com.openfaas.scale.* from a label first, as OpenFaaS does, else from an annotation', () => {
    const both = {
      labels: { 'com.openfaas.scale.min': '0' },
      annotations: { 'com.openfaas.scale.min': '3', 'com.openfaas.scale.max': '5' },
    };
    assert.deepEqual(scaleRules(both).rules, {
      min: 0,
      max: 5,
      zero: false,
      zeroDurationMs: undefined,
      factor: undefined,
    });
    assert.equal(scaleRules({ annotations: { 'com.openfaas.scale.min': '2' } }).rules.min, 2);
    assert.equal(scaleRules({}).rules.min, 1);
    assert.equal(scaleRules({ labels: null, annotations: null }).rules.min, 1);
    // A call wakes a function to its minimum, at least one replica.
    assert.equal(wakeReplicas(both), 1);
    assert.equal(wakeReplicas({ labels: { 'com.openfaas.scale.min': '4' } }), 4);
    const zero = scaleRules({
      labels: { 'com.openfaas.scale.zero': 'true', 'com.openfaas.scale.zero-duration': '5m' },
    }).rules;
    assert.equal(zero.zero, true);
    assert.equal(zero.zeroDurationMs, 300_000);
  });

  it("reckons an alert's replicas as OpenFaaS's gateway does, never below 1 on resolve", () => {
    const fn = (labels: Record<string, string>) => ({ labels });
    const minMax = fn({ 'com.openfaas.scale.min': '1', 'com.openfaas.scale.max': '2' });
    assert.equal(alertReplicas(minMax, 'firing', 1), 2);
    assert.equal(alertReplicas(minMax, 'firing', 2), 2);
    assert.equal(alertReplicas(minMax, 'resolved', 2), 1);
    // No max: OpenFaaS's 5; the default factor 10 steps by ceil(0.5) = 1; max is capped at 5.
    assert.equal(alertReplicas(fn({}), 'firing', 1), 2);
    assert.equal(alertReplicas(fn({}), 'firing', 5), 5);
    assert.equal(alertReplicas(fn({ 'com.openfaas.scale.max': '20' }), 'firing', 5), 5);
    assert.equal(
      alertReplicas(
        fn({ 'com.openfaas.scale.max': '4', 'com.openfaas.scale.factor': '50' }),
        'firing',
        1,
      ),
      3,
    );
    // Factor 0 (or out of range) disables scaling.
    assert.equal(alertReplicas(fn({ 'com.openfaas.scale.factor': '0' }), 'firing', 1), 1);
    assert.equal(alertReplicas(fn({ 'com.openfaas.scale.factor': '0' }), 'resolved', 3), 3);
    assert.equal(alertReplicas(fn({ 'com.openfaas.scale.factor': '150' }), 'firing', 1), 1);
    // Resolved: min, but at least 1; a function at zero stays there (the idler's).
    assert.equal(alertReplicas(fn({ 'com.openfaas.scale.min': '0' }), 'resolved', 3), 1);
    assert.equal(alertReplicas(fn({}), 'resolved', 0), 0);
    assert.deepEqual(scaleRules(fn({ 'com.openfaas.scale.factor': '150' })).problems, [
      'com.openfaas.scale.factor: "150" is not between 0 and 100',
    ]);
  });

  it('names every value that is not what its key takes, and keeps the default for it', () => {
    const meta = {
      labels: {
        'com.openfaas.scale.min': 'two',
        'com.openfaas.scale.zero': 'yes',
        'fnbus.queue.max_inflight': '0',
      },
      annotations: { 'com.openfaas.scale.zero-duration': 'soon' },
    };
    assert.equal(scaleRules(meta).rules.min, 1);
    const problems = ruleProblems(meta);
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.match(problems.join('\n'), /com\.openfaas\.scale\.min: "two"/);
    assert.match(problems.join('\n'), /com\.openfaas\.scale\.zero: "yes"/);
    assert.match(problems.join('\n'), /zero-duration: "soon"/);
    assert.match(problems.join('\n'), /fnbus\.queue\.max_inflight: "0"/);
    assert.match(
      ruleProblems({
        labels: { 'com.openfaas.scale.min': '3', 'com.openfaas.scale.max': '2' },
      })[0] ?? '',
      /scale\.max \(2\) is below com\.openfaas\.scale\.min \(3\)/,
    );
  });

  it('reads topics, max_inflight and a function’s own timeout in one way for every reader', () => {
    assert.deepEqual(topicsOf({ annotations: { topic: ' orders, payments,,orders ' } }), [
      'orders',
      'payments',
    ]);
    assert.deepEqual(topicsOf({ annotations: { topic: 'a,b' } }, ''), ['a,b']);
    assert.deepEqual(topicsOf({ labels: { topic: 'not-a-label' } }), []);
    assert.equal(queueMaxInflight({ annotations: { 'fnbus.queue.max_inflight': '2' } }, 8), 2);
    assert.equal(queueMaxInflight({ annotations: { 'fnbus.queue.max_inflight': '20' } }, 8), 8);
    assert.equal(queueMaxInflight({ annotations: { 'fnbus.queue.max_inflight': 'x' } }, 8), 8);
    assert.equal(functionTimeoutMs({ exec_timeout: '2s', write_timeout: '1m' }), 60_000);
    assert.equal(functionTimeoutMs({ exec_timeout: '0' }), undefined);
    assert.equal(functionTimeoutMs(undefined), undefined);
  });
});

describe('normalizeDeployment', () => {
  it('gives every provider the same spec: nulls out, namespace explicit, faas_function set', () => {
    const spec = normalizeDeployment(
      {
        service: 'hello',
        image: 'example/hello:1',
        labels: { faas_function: 'someone-else', team: 'blue' },
        secrets: null,
        registryAuth: 'x',
        network: 'y',
      },
      'openfaas-fn',
    );
    assert.deepEqual(spec, {
      service: 'hello',
      image: 'example/hello:1',
      namespace: 'openfaas-fn',
      labels: { faas_function: 'hello', team: 'blue' },
    });
    assert.equal(normalizeDeployment({ service: 'a', envProcess: 'cat' }, 'ns').image, '');
  });

  it('refuses a bad deployment with one 400 naming each thing wrong', () => {
    assert.throws(() => normalizeDeployment([], 'ns'), ValidationError);
    assert.throws(
      () =>
        normalizeDeployment(
          {
            service: 'Bad_Name',
            image: 'x',
            secrets: ['Not A Secret'],
            envVars: { 'A=B': '1' },
            labels: { 'com.openfaas.scale.max': 'many' },
          },
          'openfaas-fn',
        ),
      (error: Error & { status?: number }) => {
        assert.equal(error.status, 400);
        for (const part of [
          /function name "Bad_Name"/,
          /secret name/,
          /envVars: "A=B"/,
          /scale\.max/,
        ]) {
          assert.match(error.message, part);
        }
        return true;
      },
    );
  });
});
