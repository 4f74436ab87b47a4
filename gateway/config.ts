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
  /** The built-in autoscaler (gateway/autoscaler.ts): OpenFaaS's APIHighInvocationRate rule. */
  autoscale: AutoscaleSettings;
}

export interface AutoscaleSettings {
  /** Scale up and down on the rule; off: only `/system/alert` scales. Default on. */
  enabled: boolean;
  /** Calls a second answered 200, over `windowMs`, above which the rule holds (5). */
  rate: number;
  /** The window the rate is taken over (10 s, as the rule's `[10s]`). */
  windowMs: number;
  /** How long the rule must hold before it fires (5 s, the rule's `for`). */
  forMs: number;
  /** How often the rule is evaluated (1 s). */
  intervalMs: number;
  /** Scale functions labelled `com.openfaas.scale.zero=true` to zero when idle. Default on. */
  idler: boolean;
  /** Idle time before that, for a function without `com.openfaas.scale.zero-duration` (15m). */
  zeroDurationMs: number;
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
    autoscale: {
      enabled: read.boolean('FNBUS_AUTOSCALE', true),
      rate: read.integer('FNBUS_AUTOSCALE_RATE', 5, { min: 0 }),
      windowMs: positive(read, 'FNBUS_AUTOSCALE_WINDOW', 10_000),
      forMs: read.durationMs('FNBUS_AUTOSCALE_FOR', 5_000),
      intervalMs: positive(read, 'FNBUS_AUTOSCALE_INTERVAL', 1_000),
      idler: read.boolean('FNBUS_IDLER', true),
      // faas-idler's name for it, read too.
      zeroDurationMs: positive(read, ['FNBUS_SCALE_ZERO_DURATION', 'inactivity_duration'], 900_000),
    },
  });
}

/** A duration above zero (a zero window or tick would spin). */
function positive(read: EnvReader, name: string | readonly string[], fallbackMs: number): number {
  const ms = read.durationMs(name, fallbackMs);
  if (ms > 0) return ms;
  const set = read.raw(...(typeof name === 'string' ? [name] : name));
  read.problem(`${set?.name ?? String(name)}: "${set?.value ?? ''}" must be longer than 0`);
  return fallbackMs;
}
