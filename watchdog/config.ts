import { EnvReader, type Env } from '../core/config.js';
import { splitCommand } from './split-command.js';

export const watchdogModes = ['fork', 'streaming', 'serializing', 'http', 'static'] as const;
export type WatchdogMode = (typeof watchdogModes)[number];

/** Modes that start one process per request. */
export const forkingModes: ReadonlySet<WatchdogMode> = new Set([
  'fork',
  'streaming',
  'serializing',
]);

export interface WatchdogConfig {
  mode: WatchdogMode;
  /** fprocess split into words; empty only in static mode. */
  command: readonly string[];
  upstreamUrl: URL | undefined;
  staticPath: string;
  port: number;
  /** 0 asks the OS for a free port. */
  metricsPort: number;
  readTimeoutMs: number;
  writeTimeoutMs: number;
  /** 0 = no limit of its own (the call is still bounded by write_timeout). */
  execTimeoutMs: number;
  healthcheckIntervalMs: number;
  maxInflight: number;
  /** undefined = echo the request's Content-Type (fork mode) */
  contentType: string | undefined;
  cgiHeaders: boolean;
  marshalRequest: boolean;
  combineOutput: boolean;
  writeDebug: boolean;
  debugHeaders: boolean;
  logCallId: boolean;
  suppressLock: boolean;
  prefixLogs: boolean;
  /** Longest log line kept whole; -1 writes output as it arrives, unsplit. */
  logBufferSize: number;
  bufferHttp: boolean;
  readyPath: string | undefined;
  /** Fork through fnbus-spawner when it is built (false: node's child_process). */
  forkHelper: boolean;
  /** `fork`/`serializing`: most output kept for the response (it is sent once the process exits). */
  maxResponseBytes: number;
  /** `marshal_request`: most request body read into memory (elsewhere the body streams to stdin). */
  maxRequestBytes: number;
}

/**
 * OpenFaaS variables that fnbus recognises and deliberately does not support. Setting one is not
 * an error (an image built for OpenFaaS may carry it); the watchdog logs a warning naming it.
 */
export const unsupportedVariables: Readonly<Record<string, string>> = {
  jwt_auth: 'OpenFaaS Enterprise function auth; put auth in front of the gateway instead',
  jwt_auth_debug: 'belongs to jwt_auth, which is not supported',
  jwt_auth_local: 'belongs to jwt_auth, which is not supported',
  read_debug: 'never implemented by OpenFaaS either; use write_debug',
};

const defaultTimeoutMs = 30_000;
/** Bodies the watchdog has to hold whole: enough for any JSON or image answer; stream bigger. */
export const defaultMaxBufferedBytes = 32 * 1024 * 1024;

/** Reads the watchdog's settings from an OpenFaaS-style environment; reports every problem. */
export function readConfig(env: Env): Readonly<WatchdogConfig> {
  const read = new EnvReader(env);
  const mode = readMode(read);
  const forking = forkingModes.has(mode);

  const fprocess = read.raw('function_process', 'fprocess');
  let command: string[] = [];
  if (fprocess) {
    try {
      command = splitCommand(fprocess.value);
    } catch (error) {
      read.problem(`${fprocess.name}: ${(error as Error).message}`);
    }
  } else if (mode !== 'static') {
    read.problem(`fprocess: required in ${mode} mode (the command to run, e.g. fprocess=cat)`);
  }

  const upstream = read.raw('http_upstream_url', 'upstream_url');
  let upstreamUrl: URL | undefined;
  if (upstream) {
    upstreamUrl = URL.canParse(upstream.value) ? new URL(upstream.value) : undefined;
    if (!upstreamUrl || upstreamUrl.protocol !== 'http:') {
      read.problem(`${upstream.name}: "${upstream.value}" is not an http:// URL`);
    }
  } else if (mode === 'http') {
    read.problem('upstream_url: required in http mode (e.g. upstream_url=http://127.0.0.1:3000)');
  }

  const writeTimeoutMs = read.durationMs('write_timeout', defaultTimeoutMs);
  if (writeTimeoutMs <= 0) read.problem('write_timeout: must be more than 0');

  const config: WatchdogConfig = {
    mode,
    command,
    upstreamUrl,
    staticPath: read.string('static_path', '/home/app/public'),
    port: read.integer('port', 8080, { min: 0, max: 65535 }),
    metricsPort: read.integer('metrics_port', 8081, { min: 0, max: 65535 }),
    readTimeoutMs: read.durationMs('read_timeout', defaultTimeoutMs),
    writeTimeoutMs,
    // The classic watchdog has no exec limit by default; of-watchdog's modes have 30s.
    execTimeoutMs: read.durationMs('exec_timeout', mode === 'fork' ? 0 : defaultTimeoutMs),
    healthcheckIntervalMs: read.durationMs('healthcheck_interval', 0),
    maxInflight: read.integer('max_inflight', 0, { min: 0 }),
    contentType:
      read.string('content_type') ??
      (forking && mode !== 'fork' ? 'application/octet-stream' : undefined),
    cgiHeaders: read.boolean('cgi_headers', true),
    marshalRequest: read.boolean('marshal_request', false),
    combineOutput: read.boolean('combine_output', mode === 'fork'),
    writeDebug: read.boolean('write_debug', false),
    debugHeaders: read.boolean('debug_headers', false),
    logCallId: read.boolean(['log_callid', 'log_call_id'], false),
    suppressLock: read.boolean('suppress_lock', false),
    prefixLogs: read.boolean('prefix_logs', true),
    logBufferSize: read.integer('log_buffer_size', 64 * 1024, { min: -1 }),
    bufferHttp: read.boolean(['buffer_http', 'http_buffer_req_body'], false),
    readyPath: read.string('ready_path'),
    forkHelper: read.boolean('fork_helper', true),
    maxResponseBytes: read.integer('max_response_bytes', defaultMaxBufferedBytes, { min: 1 }),
    maxRequestBytes: read.integer('max_request_bytes', defaultMaxBufferedBytes, { min: 1 }),
  };
  if (config.logBufferSize === 0)
    read.problem('log_buffer_size: must be -1 (unbuffered) or more than 0');
  if (config.readyPath !== undefined && !config.readyPath.startsWith('/')) {
    read.problem(`ready_path: "${config.readyPath}" must start with /`);
  }
  return read.done(config);
}

function readMode(read: EnvReader): WatchdogMode {
  const found = read.raw('mode');
  if (!found) return 'fork';
  const value = found.value.trim();
  if ((watchdogModes as readonly string[]).includes(value)) return value as WatchdogMode;
  const why =
    value === 'afterburn'
      ? ' (afterburn is deprecated in OpenFaaS and not supported; use http)'
      : value === 'inproc'
        ? ' (inproc runs Go handlers inside of-watchdog; use http)'
        : '';
  read.problem(`mode: "${value}" is not one of ${watchdogModes.join(', ')}${why}`);
  return 'fork';
}
