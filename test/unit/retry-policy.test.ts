import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../core/errors.js';
import { readWorkerConfig } from '../../queue/config.js';
import {
  Backoff,
  backoffMs,
  defaultRetryPolicy,
  isRetryable,
  policyFor,
  retryAfterMs,
} from '../../core/retry-policy.js';

describe('retry policy', () => {
  it('takes a function’s com.openfaas.retry.* annotations over the defaults', () => {
    const { policy, problems } = policyFor(
      {
        'com.openfaas.retry.attempts': '3',
        'com.openfaas.retry.codes': '429, 503',
        'com.openfaas.retry.min_wait': '500ms',
        'com.openfaas.retry.max_wait': '1m',
      },
      defaultRetryPolicy,
    );
    assert.deepEqual(problems, []);
    assert.equal(policy.maxAttempts, 3);
    assert.deepEqual([...policy.retryCodes], [429, 503]);
    assert.equal(policy.minWaitMs, 500);
    assert.equal(policy.maxWaitMs, 60_000);
  });

  it('keeps the default for an annotation that does not parse, and says which', () => {
    const { policy, problems } = policyFor(
      { 'com.openfaas.retry.attempts': 'many', 'com.openfaas.retry.codes': '5xx' },
      defaultRetryPolicy,
    );
    assert.equal(policy.maxAttempts, defaultRetryPolicy.maxAttempts);
    assert.equal(policy.retryCodes, defaultRetryPolicy.retryCodes);
    assert.equal(problems.length, 2);
    assert.match(problems.join('\n'), /attempts: "many"/);
    assert.match(problems.join('\n'), /codes: "5xx"/);
  });

  it('backs off exponentially with equal jitter, capped', () => {
    const policy = { ...defaultRetryPolicy, minWaitMs: 100, maxWaitMs: 1000 };
    assert.equal(
      backoffMs(policy, 1, () => 0),
      50,
    );
    assert.equal(
      backoffMs(policy, 1, () => 1),
      100,
    );
    assert.equal(
      backoffMs(policy, 3, () => 0),
      200,
    );
    assert.equal(
      backoffMs(policy, 3, () => 1),
      400,
    );
    assert.equal(
      backoffMs(policy, 10, () => 1),
      1000,
      'capped at max_wait',
    );
    assert.equal(
      backoffMs(policy, 10, () => 0),
      500,
    );
  });

  it('retries no answer, a retried status, and an error fnbus made (X-OpenFaaS-Internal, ≥ 400)', () => {
    const policy = { retryCodes: new Set([429, 503]) };
    const answer = (status: number, headers: Record<string, string> = {}) => ({ status, headers });
    const internal = { 'X-OpenFaaS-Internal': 'proxy' };
    assert.equal(isRetryable(undefined, policy), true, 'no answer at all');
    assert.equal(isRetryable(answer(503), policy), true);
    assert.equal(isRetryable(answer(500), policy), false, 'the function’s own 500, not listed');
    assert.equal(isRetryable(answer(500, internal), policy), true, 'made by the gateway');
    assert.equal(isRetryable(answer(404, { 'x-openfaas-internal': 'of-watchdog' }), policy), true);
    // The worker and the controller disagreed here: a success is a success, whatever it carries.
    assert.equal(isRetryable(answer(200, internal), policy), false);
    assert.equal(isRetryable(answer(302, internal), policy), false);
  });

  it('waits longer after each failure in a row, and starts over after a success', () => {
    const backoff = new Backoff({ minWaitMs: 10, maxWaitMs: 40 }, () => 1);
    assert.deepEqual(
      [backoff.next(), backoff.next(), backoff.next(), backoff.next()],
      [10, 20, 40, 40],
    );
    assert.equal(backoff.failures, 4);
    backoff.reset();
    assert.equal(backoff.next(), 10);
    const jittered = new Backoff({ minWaitMs: 100, maxWaitMs: 100 });
    for (let i = 0; i < 50; i++) {
      const wait = jittered.next();
      assert.ok(wait >= 50 && wait <= 100, `equal jitter: ${wait}`);
    }
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-11-26T12:00:00Z');
    assert.equal(retryAfterMs('3', now), 3000);
    assert.equal(retryAfterMs('Thu, 26 Nov 2026 12:00:10 GMT', now), 10_000);
    assert.equal(retryAfterMs('Thu, 26 Nov 2026 11:00:00 GMT', now), 0);
    assert.equal(retryAfterMs('soon', now), undefined);
    assert.equal(retryAfterMs(undefined, now), undefined);
  });
});

describe('queue worker config', () => {
  it('reads OpenFaaS Pro’s names, with defaults', () => {
    const config = readWorkerConfig({
      max_inflight: '8',
      max_retry_attempts: '4',
      retry_http_codes: '500,503',
      initial_retry_wait: '2s',
      max_retry_wait: '30s',
      gateway_url: 'http://gw:8080',
    });
    assert.equal(config.maxInflight, 8);
    assert.equal(config.retry.maxAttempts, 4);
    assert.deepEqual([...config.retry.retryCodes], [500, 503]);
    assert.equal(config.retry.minWaitMs, 2000);
    assert.equal(config.retry.maxWaitMs, 30_000);
    assert.equal(config.gatewayUrl, 'http://gw:8080');
    assert.equal(readWorkerConfig({}).retry.maxAttempts, 10);
  });

  it('reports every bad setting at once', () => {
    assert.throws(
      () =>
        readWorkerConfig({
          max_inflight: '0',
          retry_http_codes: 'all',
          initial_retry_wait: '1m',
          max_retry_wait: '1s',
        }),
      (error: Error) =>
        error instanceof ConfigError &&
        /max_inflight/.test(error.message) &&
        /retry_http_codes/.test(error.message) &&
        /max_retry_wait/.test(error.message),
    );
  });
});
