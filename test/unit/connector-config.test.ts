import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readConnectorConfig } from '../../connectors/sdk/config.js';
import { readWebhookConfig } from '../../connectors/webhook/config.js';
import { ConfigError } from '../../core/errors.js';

describe('connector config', () => {
  it('reads OpenFaaS’s connector names, with the connector’s own defaults', () => {
    const config = readConnectorConfig(
      {
        gateway_url: 'http://gw:8080',
        rebuild_interval: '2s',
        asynchronous_invocation: 'true',
        max_retry_attempts: '2',
        retry_http_codes: '503',
      },
      { contentType: 'application/json' },
    );
    assert.equal(config.gatewayUrl, 'http://gw:8080');
    assert.equal(config.rebuildIntervalMs, 2000);
    assert.equal(config.asyncInvocation, true);
    assert.equal(config.contentType, 'application/json');
    assert.equal(config.retry.maxAttempts, 2);
    assert.deepEqual([...config.retry.retryCodes], [503]);
    assert.equal(readConnectorConfig({}).asyncInvocation, false);
  });

  it('names every bad value at once', () => {
    assert.throws(
      () =>
        readConnectorConfig({
          gateway_url: 'gw:8080',
          rebuild_interval: 'soon',
          retry_http_codes: 'all',
        }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /gateway_url/);
        assert.match(error.message, /rebuild_interval/);
        assert.match(error.message, /retry_http_codes/);
        return true;
      },
    );
  });

  it('reads webhook_verify as topic=scheme:secret entries, and refuses others', () => {
    const config = readWebhookConfig({
      webhook_verify: 'github-events=github:gh ; payments=stripe:stripe-key',
    });
    assert.deepEqual(
      [...config.verify],
      [
        ['github-events', { scheme: 'github', secret: 'gh' }],
        ['payments', { scheme: 'stripe', secret: 'stripe-key' }],
      ],
    );
    assert.throws(
      () => readWebhookConfig({ webhook_verify: 'x=md5:key' }),
      /webhook_verify: "x=md5:key"/,
    );
    assert.throws(() => readWebhookConfig({ webhook_verify: 'nonsense' }), ConfigError);
  });
});
