import { EnvReader, fnbusName, type Env } from '../core/config.js';

export interface GatewayConfig {
  port: number;
  readTimeoutMs: number;
  writeTimeoutMs: number;
  /** How long the gateway waits for a function's answer before a 502. */
  upstreamTimeoutMs: number;
  /** Basic auth on `/system/*`, call status and cancel; on unless `basic_auth=false`. */
  basicAuth: boolean;
  secretMountPath: string;
  scaleFromZero: boolean;
  functionNamespace: string;
  /** Largest request body on /system routes. */
  maxSystemBodyBytes: number;
  /** Largest body of an async call (413 beyond); default 1 MiB. */
  maxAsyncBodyBytes: number;
  /**
   * How long a stopping hub lets calls in flight finish (its worker's included) before it cuts
   * them; default 30 s.
   */
  shutdownTimeoutMs: number;
}

/** The gateway's settings, named as OpenFaaS's gateway names them; every problem at once. */
export function readConfig(env: Env): Readonly<GatewayConfig> {
  const read = new EnvReader(env);
  return read.done({
    port: read.integer('port', 8080, { min: 0, max: 65535 }),
    readTimeoutMs: read.durationMs('read_timeout', 60_000),
    writeTimeoutMs: read.durationMs('write_timeout', 60_000),
    upstreamTimeoutMs: read.durationMs('upstream_timeout', 60_000),
    // Secure by default, as OpenFaaS: anyone who reaches /system can run commands on the host.
    basicAuth: read.boolean('basic_auth', true),
    secretMountPath: read.string('secret_mount_path', '/run/secrets/'),
    scaleFromZero: read.boolean('scale_from_zero', true),
    functionNamespace: read.string('function_namespace', 'openfaas-fn'),
    maxSystemBodyBytes: read.integer(fnbusName('max_system_body_bytes'), 1024 * 1024, {
      min: 1024,
    }),
    maxAsyncBodyBytes: read.integer(fnbusName('max_async_body_bytes'), 1024 * 1024, { min: 1 }),
    shutdownTimeoutMs: read.durationMs(fnbusName('shutdown_timeout'), 30_000),
  });
}
