import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readHubConfig } from '../../cli/hub-config.js';
import { ConfigError } from '../../core/errors.js';
import { repoRoot } from '../helpers/watchdog.js';

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return [...error.problems];
  }
  return [];
}

describe('readHubConfig', () => {
  it('reads every component, frozen, with defaults', () => {
    const hub = readHubConfig({ HOME: '/home/ada' });
    assert.ok(Object.isFrozen(hub));
    assert.ok(Object.isFrozen(hub.gateway) && Object.isFrozen(hub.worker));
    assert.equal(hub.gateway.port, 8080);
    assert.equal(hub.gateway.basicAuth, true);
    assert.equal(hub.worker.maxInflight, 64);
    assert.equal(hub.webhook.port, 8090);
    assert.equal(hub.host, '127.0.0.1');
    assert.equal(hub.queueUrl, undefined);
    assert.deepEqual(hub.connectors, ['cron', 'webhook']);
    assert.throws(() => {
      (hub as { host: string }).host = '0.0.0.0';
    }, TypeError);
  });

  it("reads the autoscaler's settings: on by default, OpenFaaS's rule, faas-idler's name", () => {
    assert.deepEqual(readHubConfig({}).gateway.autoscale, {
      enabled: true,
      rate: 5,
      windowMs: 10_000,
      forMs: 5_000,
      intervalMs: 1_000,
      idler: true,
      zeroDurationMs: 900_000,
    });
    const set = readHubConfig({
      FNBUS_AUTOSCALE: 'false',
      FNBUS_AUTOSCALE_RATE: '20',
      FNBUS_AUTOSCALE_WINDOW: '30s',
      FNBUS_IDLER: '0',
      inactivity_duration: '2m',
    }).gateway.autoscale;
    assert.equal(set.enabled, false);
    assert.equal(set.rate, 20);
    assert.equal(set.windowMs, 30_000);
    assert.equal(set.idler, false);
    assert.equal(set.zeroDurationMs, 120_000);
    assert.equal(
      readHubConfig({ inactivity_duration: '2m', FNBUS_SCALE_ZERO_DURATION: '30s' }).gateway
        .autoscale.zeroDurationMs,
      30_000,
    );
    assert.deepEqual(
      problemsOf(() =>
        readHubConfig({ FNBUS_AUTOSCALE: 'maybe', FNBUS_AUTOSCALE_INTERVAL: '0' }),
      ).map((p) => p.split(':')[0]),
      ['FNBUS_AUTOSCALE', 'FNBUS_AUTOSCALE_INTERVAL'],
    );
  });

  it('takes options over variables', () => {
    const hub = readHubConfig(
      {
        port: '9000',
        FNBUS_HOST: '0.0.0.0',
        FNBUS_QUEUE: 'nats://a:4222',
        gateway_url: 'http://x',
      },
      { port: '9100', host: '[::1]', queue: 'redis://b:6379', gateway: 'http://y:8080' },
    );
    assert.equal(hub.gateway.port, 9100);
    assert.equal(hub.host, '::1');
    assert.equal(hub.queueUrl, 'redis://b:6379');
    assert.equal(hub.worker.gatewayUrl, 'http://y:8080');
  });

  it('reports the problems of every component and option at once', () => {
    const problems = problemsOf(() =>
      readHubConfig(
        {
          port: 'x',
          max_inflight: '0',
          FNBUS_WEBHOOK_PORT: '70000',
          max_total_replicas: 'many',
          FNBUS_CONNECTORS: 'cron,fax',
        },
        { queue: 'amqp://q' },
      ),
    );
    const named = problems.map((problem) => problem.split(':')[0]);
    for (const name of [
      '--queue',
      'FNBUS_CONNECTORS',
      'port',
      'max_inflight',
      'FNBUS_WEBHOOK_PORT',
      'max_total_replicas',
    ]) {
      assert.ok(named.includes(name), `${name} in ${problems.join(' | ')}`);
    }
    // max_inflight is read by the worker and by the connectors: said once.
    assert.equal(problems.filter((p) => p.startsWith('max_inflight:')).length, 1);
  });

  it('reads only the parts a command runs', () => {
    const hub = readHubConfig({ port: 'not a port', max_inflight: '8' }, { parts: ['worker'] });
    assert.equal(hub.worker.maxInflight, 8);
    assert.equal((hub as { gateway?: unknown }).gateway, undefined);
    // A lone gateway runs no connector: FNBUS_CONNECTORS is not its business.
    const gateway = readHubConfig(
      { FNBUS_CONNECTORS: 'fax' },
      { parts: ['gateway', 'provider'], port: '0' },
    );
    assert.equal(gateway.gateway.port, 0);
  });

  it("fnbus's own settings: FNBUS_ names, the 0.1 names still read, FNBUS_ first", () => {
    assert.equal(readHubConfig({ shutdown_timeout: '5s' }).gateway.shutdownTimeoutMs, 5000);
    assert.equal(readHubConfig({ FNBUS_SHUTDOWN_TIMEOUT: '7s' }).gateway.shutdownTimeoutMs, 7000);
    const both = readHubConfig({ FNBUS_CALL_TIMEOUT: '1s', call_timeout: '2s' });
    assert.equal(both.worker.callTimeoutMs, 1000);
    assert.deepEqual(
      problemsOf(() => readHubConfig({ FNBUS_MAX_FUNCTIONS: '0' })).map((p) => p.split(':')[0]),
      ['FNBUS_MAX_FUNCTIONS'],
    );
  });

  it('every variable it reads is in the table of cli/README.md', () => {
    const asked = new Set<string>();
    const env = new Proxy(
      {},
      {
        get: (_target, name) => {
          if (typeof name === 'string') asked.add(name);
          return undefined;
        },
        ownKeys: () => [],
      },
    );
    readHubConfig(env);
    const readme = readFileSync(join(repoRoot, 'cli', 'README.md'), 'utf8');
    const table = new Set(
      [...readme.matchAll(/^\| `([A-Za-z_]+)`(?: \(`([A-Za-z_]+)`\))? *\|/gm)].flatMap((m) =>
        [m[1], m[2]].filter((name): name is string => name !== undefined),
      ),
    );
    assert.ok(asked.size > 30, `read ${asked.size} variables`);
    const missing = [...asked].filter((name) => !table.has(name) && name !== 'HOME');
    assert.deepEqual(missing, []);
  });
});
