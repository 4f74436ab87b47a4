import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Env } from '../core/config.js';
import { ConfigError, ValidationError } from '../core/errors.js';
import { readConnectorConfig, type ConnectorConfig } from '../connectors/sdk/config.js';
import { readWebhookConfig, type WebhookConfig } from '../connectors/webhook/config.js';
import { providerKind } from '../deploy/open-provider.js';
import { readProviderLimits, type ProviderLimits } from '../deploy/process/limits.js';
import { localImagesDir } from '../deploy/process/local-image-store.js';
import { readConfig as readGatewayConfig, type GatewayConfig } from '../gateway/config.js';
import { readWorkerConfig, type WorkerConfig } from '../queue/config.js';
import { connectorKinds, defaultConnectorKinds, type ConnectorKind } from './connectors.js';
import { bareHost, defaultHost } from './listen-host.js';

/** The settings of each component, by the part of the hub that reads them. */
export interface HubParts {
  gateway: GatewayConfig;
  /** The process provider's caps. */
  provider: ProviderLimits;
  worker: WorkerConfig;
  /** The settings every connector shares (a kind's own defaults are applied when it starts). */
  connector: ConnectorConfig;
  webhook: WebhookConfig;
}

export type HubPart = keyof HubParts;

/** Command-line options; each wins over its variable. */
export interface HubOptions {
  /** The parts a command runs (default: all, as `fnbus up`). Only these are read and checked. */
  parts?: readonly HubPart[];
  port?: string;
  host?: string;
  stateDir?: string;
  queue?: string;
  /** The provider's URL (`process`, `http://…`). */
  provider?: string;
  /** Comma-separated connector kinds, or `none`. */
  connectors?: string;
  /** The gateway a worker or connector calls (`gateway_url`). */
  gateway?: string;
  /** Where cron replicas share slots. */
  lease?: string;
}

/** What every command of the hub shares. */
export interface HubCommon {
  /** The address the gateway listens on. */
  host: string;
  stateDir: string;
  /** The async queue: redis://, rediss://, nats://, tls://, or undefined for the embedded one. */
  queueUrl: string | undefined;
  /** The provider: `process` (undefined) or a remote one's URL (deploy/open-provider.ts). */
  providerUrl: string | undefined;
  connectors: readonly ConnectorKind[];
  leaseUrl: string | undefined;
  /** This machine's image store, where `fnbus build` records template functions. */
  imagesDir: string;
  /** The environment the settings were read from, with the options applied (connectors read it). */
  env: Env;
}

export type HubConfig<P extends HubPart = HubPart> = Readonly<HubCommon & Pick<HubParts, P>>;

const allParts: readonly HubPart[] = ['gateway', 'provider', 'worker', 'connector', 'webhook'];

const readers: { [P in HubPart]: (env: Env) => HubParts[P] } = {
  gateway: readGatewayConfig,
  provider: readProviderLimits,
  worker: readWorkerConfig,
  connector: readConnectorConfig,
  webhook: readWebhookConfig,
};

/**
 * The one hub configuration, read before anything starts or listens: every component's settings
 * (gateway/config.ts, deploy/process/limits.ts, queue/config.ts, connectors/sdk/config.ts,
 * connectors/webhook/config.ts) and the command's options, checked together. Throws one
 * ConfigError naming every problem found in any of them; else returns a frozen object.
 * Variables: cli/README.md, Configuration.
 */
export function readHubConfig<P extends HubPart = HubPart>(
  env: Env,
  options: HubOptions & { parts?: readonly P[] } = {},
): HubConfig<P> {
  const problems: string[] = [];
  const given = (value: string | undefined) =>
    value === undefined || value.trim() === '' ? undefined : value;
  // Options win over variables: applied to the env each component reads.
  const overrides = {
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.gateway !== undefined ? { gateway_url: options.gateway } : {}),
  };
  const merged: Env = Object.keys(overrides).length > 0 ? { ...env, ...overrides } : env;
  const wanted = options.parts ?? allParts;
  // A setting is checked where it is used: a lone gateway runs no connector.
  const problem = (used: boolean, text: string) => {
    if (used) problems.push(text);
  };

  const queueUrl = given(options.queue) ?? given(env.FNBUS_QUEUE);
  if (queueUrl !== undefined && queueUrl !== 'local') {
    const scheme = URL.canParse(queueUrl) ? new URL(queueUrl).protocol : '';
    if (!['redis:', 'rediss:', 'nats:', 'tls:'].includes(scheme)) {
      problem(
        wanted.includes('gateway') || wanted.includes('worker'),
        `${options.queue !== undefined ? '--queue' : 'FNBUS_QUEUE'}: "${queueUrl}" is not redis://host:port, nats://host:port or local`,
      );
    }
  }
  const providerUrl = given(options.provider) ?? given(env.FNBUS_PROVIDER);
  try {
    providerKind(providerUrl);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    // The message never shows the URL's credentials.
    problems.push(
      `${options.provider !== undefined ? '--provider' : 'FNBUS_PROVIDER'}: ${error.message}`,
    );
  }
  const kindsText = given(options.connectors) ?? given(env.FNBUS_CONNECTORS);
  const kinds: ConnectorKind[] = [];
  for (const name of (kindsText ?? defaultConnectorKinds.join(',')).split(',')) {
    const kind = name.trim();
    if (kind === '' || kind === 'none') continue;
    if ((connectorKinds as readonly string[]).includes(kind)) {
      if (!kinds.includes(kind)) kinds.push(kind);
    } else {
      problem(
        wanted.includes('connector'),
        `${options.connectors !== undefined ? '--connectors' : 'FNBUS_CONNECTORS'}: unknown connector "${kind}" (choose from ${connectorKinds.join(', ')}, or none)`,
      );
    }
  }
  const host = bareHost(given(options.host) ?? given(env.FNBUS_HOST) ?? defaultHost);
  const stateDir =
    given(options.stateDir) ??
    given(env.FNBUS_STATE_DIR) ??
    join(given(env.XDG_STATE_HOME) ?? join(homedir(), '.local', 'state'), 'fnbus');

  if (wanted.includes('gateway') && given(env.FNBUS_USERNAME) && !given(env.FNBUS_PASSWORD)) {
    problems.push(
      'FNBUS_USERNAME is set without FNBUS_PASSWORD: set both, or neither for a generated password',
    );
  }
  const parts: Partial<HubParts> = {};
  for (const part of wanted) {
    try {
      Object.assign(parts, { [part]: readers[part](merged) });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      // One variable read by two components is reported once.
      for (const problem of error.problems) if (!problems.includes(problem)) problems.push(problem);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    ...(parts as Pick<HubParts, P>),
    host,
    stateDir,
    imagesDir: localImagesDir(env),
    queueUrl: queueUrl === 'local' ? undefined : queueUrl,
    providerUrl: providerUrl === 'process' ? undefined : providerUrl,
    connectors: Object.freeze(kinds),
    leaseUrl:
      given(options.lease) ?? given(env.FNBUS_LEASE_URL) ?? given(env.lease_url) ?? undefined,
    env: merged,
  });
}
