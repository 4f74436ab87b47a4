import { EnvReader, fnbusName, type Env } from '../../core/config.js';
import { defaultRetryPolicy, readRetryPolicy, type RetryPolicy } from '../../core/retry-policy.js';

export interface ConnectorConfig {
  gatewayUrl: string;
  /** Invoke through `/async-function` (asynchronous_invocation). */
  asyncInvocation: boolean;
  /** How often the topic map is rebuilt (rebuild_interval). */
  rebuildIntervalMs: number;
  /** Longest wait for a function's answer (upstream_timeout); 0: none. */
  upstreamTimeoutMs: number;
  /** `Content-Type` of events that carry none (content_type). */
  contentType: string;
  /** Read the gateway's basic-auth credentials from `secretMountPath` (basic_auth). */
  basicAuth: boolean;
  secretMountPath: string;
  /** Splits a `topic` annotation (topic_delimiter). */
  topicDelimiter: string;
  /** Calls in flight at once (max_inflight). */
  maxInflight: number;
  retry: RetryPolicy;
  printResponse: boolean;
  printResponseBody: boolean;
  /** Where `fnbus connector` serves its Prometheus metrics (metrics_port). */
  metricsPort: number;
}

/** Retries for a connector's calls: fewer and shorter than the async worker's, as a source waits. */
const connectorRetry: RetryPolicy = {
  ...defaultRetryPolicy,
  maxAttempts: 5,
  minWaitMs: 500,
  maxWaitMs: 10_000,
};

/**
 * A connector's settings, by OpenFaaS's connector env names (`gateway_url`, `topics` is the
 * source's, `asynchronous_invocation`, `rebuild_interval`, `upstream_timeout`, `content_type`,
 * `basic_auth`, `secret_mount_path`, `print_response`, `print_response_body`) and the async
 * worker's retry names; every problem at once. `defaults` are the connector's own (webhooks
 * invoke asynchronously unless told otherwise; cron, as OpenFaaS's, synchronously).
 */
export function readConnectorConfig(
  env: Env,
  defaults: ConnectorDefaults = {},
): Readonly<ConnectorConfig> {
  const read = new EnvReader(env);
  return read.done(readConnectorSettings(read, defaults));
}

/** A connector kind's own defaults for the SDK's settings. */
export interface ConnectorDefaults {
  asyncInvocation?: boolean;
  contentType?: string;
}

/**
 * `readConnectorConfig` through a reader a kind shares with its own settings, so that one
 * ConfigError tells every problem of both.
 */
export function readConnectorSettings(
  read: EnvReader,
  defaults: ConnectorDefaults = {},
): ConnectorConfig {
  const gatewayUrl = read.string('gateway_url', 'http://127.0.0.1:8080');
  if (!/^https?:\/\/[^/]/.test(gatewayUrl)) {
    read.problem(`gateway_url: "${gatewayUrl}" is not an http(s) URL`);
  }
  return {
    gatewayUrl,
    asyncInvocation: read.boolean('asynchronous_invocation', defaults.asyncInvocation ?? false),
    rebuildIntervalMs: read.durationMs('rebuild_interval', 5000),
    upstreamTimeoutMs: read.durationMs('upstream_timeout', 60_000),
    contentType: read.string('content_type', defaults.contentType ?? 'text/plain'),
    basicAuth: read.boolean('basic_auth', false),
    secretMountPath: read.string('secret_mount_path', '/var/openfaas/secrets'),
    topicDelimiter: read.string('topic_delimiter', ','),
    maxInflight: read.integer('max_inflight', 64, { min: 1, max: 10_000 }),
    retry: readRetryPolicy(read, connectorRetry),
    printResponse: read.boolean('print_response', true),
    printResponseBody: read.boolean('print_response_body', false),
    metricsPort: read.integer(fnbusName('metrics_port'), 8081, { min: 0, max: 65535 }),
  };
}

/** TLS files' contents, as Node's `tls.connect` takes them. */
export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/**
 * A broker connector's TLS (`ca_file`, `cert_file`, `key_file`): any of the files, or `on`,
 * turns it on; undefined when off.
 */
export function readTlsFiles(read: EnvReader, on = false): TlsFiles | undefined {
  const ca = read.fileText('ca_file');
  const cert = read.fileText('cert_file');
  const key = read.fileText('key_file');
  if (!on && !ca && !cert && !key) return undefined;
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}
