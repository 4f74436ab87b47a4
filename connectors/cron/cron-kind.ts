import { join } from 'node:path';
import { EnvReader, fnbusName } from '../../core/config.js';
import { CronConnectorName } from '../../core/openfaas-names.js';
import { readConnectorSettings } from '../sdk/config.js';
import type { ConnectorKind, KindConfig } from '../sdk/run-connector.js';

export interface CronConfig extends KindConfig {
  /** Where replicas share slots (FNBUS_LEASE_URL, lease_url): redis://, nats://, else alone. */
  leaseUrl?: string;
}

/**
 * `cron`: functions with `topic: cron-function` fire on their `schedule` (cron-source.ts), one
 * firing per slot across replicas sharing `lease_url`. Synchronous by default, as OpenFaaS's.
 */
export const cronKind: ConnectorKind<CronConfig> = {
  name: 'cron',
  connector: CronConnectorName,
  runsByDefault: true,
  readConfig(env) {
    const read = new EnvReader(env);
    const connector = readConnectorSettings(read);
    const lease = read.raw(...fnbusName('lease_url'));
    const leaseUrl = lease?.value.trim();
    if (lease && !/^(rediss?:\/\/|nats:\/\/|local$|memory$)/.test(lease.value.trim())) {
      read.problem(`${lease.name}: "${lease.value}" is not redis://, nats:// or local`);
    }
    return read.done({ connector, ...(leaseUrl ? { leaseUrl } : {}) });
  },
  async createSource({ config, topicMap, gateway, callSignal, logger, registry, host }) {
    // Loaded when a cron connector runs: cron-parser, and the ledger's client.
    const [{ CronSource }, { openLedger }] = await Promise.all([
      import('./cron-source.js'),
      import('./open-ledger.js'),
    ]);
    const ledger = await openLedger(
      config.leaseUrl,
      host.stateDir && join(host.stateDir, 'cron-last-fired.json'),
    );
    logger.info({ lease: config.leaseUrl ?? 'local' }, 'cron ledger open');
    return new CronSource({
      topicMap,
      ledger,
      registry,
      logger,
      callState: async (callId) =>
        (
          await gateway.json<{ state?: string }>(
            `/system/calls/${encodeURIComponent(callId)}`,
            undefined,
            callSignal(),
          )
        ).state,
    });
  },
};
