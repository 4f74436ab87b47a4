import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startCli, type RunningCli, stopCli } from '../helpers/cli.js';
import { connectorAuthEnv, startHub, stopHub } from '../helpers/hub.js';
import { startNats, startRedis } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { makeTempDir } from '../helpers/watchdog.js';
import { deployCron, firings, recorderProcess } from '../helpers/cron.js';

const redis = await startRedis();
const nats = await startNats();
after(async () => {
  await redis.stop();
  await nats.stop();
});

/** `fnbus connector cron` on its own, against `gateway`, sharing slots through `lease`. */
function startCronConnector(gateway: string, lease?: string): RunningCli {
  return startCli(
    ['connector', 'cron', '--gateway', gateway, ...(lease ? ['--lease', lease] : [])],
    { ...connectorAuthEnv(), rebuild_interval: '500ms', metrics_port: '0' },
  );
}

for (const [backend, leaseUrl] of [
  ['Redis', () => redis.url],
  ['NATS', () => nats.url],
] as const) {
  describe(`cron connector replicas sharing slots through ${backend}`, () => {
    it('fires each slot once, whichever replica wins it', async (t) => {
      const dir = makeTempDir('fnbus-cron-replicas-');
      const file = join(dir, 'firings');
      const { hub, url } = await startHub(['--connectors', 'none'], join(dir, 'state'));
      t.after(() => stopHub(hub));
      const replicas = [0, 1].map(() => startCronConnector(url, leaseUrl()));
      t.after(() => Promise.all(replicas.map((replica) => stopCli(replica))));
      await deployCron(url, 'shared', recorderProcess(file), { schedule: '* * * * * *' });

      await waitFor(() => firings(file).length >= 6, { timeoutMs: 20_000, what: '6 firings' });
      // A firing in flight at the count above lands too: let it.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const slots = firings(file).map((firing) => firing.scheduledMs);
      assert.equal(new Set(slots).size, slots.length, `each slot once: ${slots.join(', ')}`);
      for (const replica of replicas) {
        assert.match(replica.stdout(), /cron connector running/);
      }
    });
  });
}

describe('cron connector and its gateway', () => {
  it('keeps its map while the gateway is down, and fires again once it is back', async (t) => {
    const dir = makeTempDir('fnbus-cron-gateway-');
    const file = join(dir, 'firings');
    const stateDir = join(dir, 'state');
    const first = await startHub(['--connectors', 'none'], stateDir);
    const connector = startCronConnector(first.url);
    t.after(() => stopCli(connector));
    await deployCron(first.url, 'steady', recorderProcess(file), { schedule: '@every 1s' });
    await waitFor(() => firings(file).length >= 2, { timeoutMs: 15_000, what: 'firings' });

    await stopHub(first.hub);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(connector.child.exitCode, null, 'the connector is still running');
    const restartedAt = Date.now();
    const second = await startHub(['--connectors', 'none'], stateDir, {}, first.port);
    t.after(() => stopHub(second.hub));
    await waitFor(() => firings(file).some((firing) => firing.ranMs > restartedAt), {
      timeoutMs: 20_000,
      what: 'a firing after the gateway came back',
    });
    assert.match(
      connector.stdout(),
      /cannot list functions: keeping the last topic map|not delivered|firing not delivered/,
    );
  });
});
