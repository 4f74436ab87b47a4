import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDurationMs } from '../core/duration.js';
import type { Logger } from '../core/logger.js';
import { Call, internalHeader, internalValue } from './call.js';
import { forkingModes, type WatchdogConfig } from './config.js';
import { createBufferedForkHandler, createStreamingForkHandler } from './fork-handlers.js';
import { FunctionSupervisor } from './function-supervisor.js';
import { createHttpProxy, type HttpProxy } from './http-handler.js';
import { findExecutable } from './find-executable.js';
import { createLauncher } from './launcher.js';
import { lockFile } from './lock-file.js';
import { WatchdogMetrics } from './metrics.js';
import type { ProcessLauncher } from './spawner.js';

export interface WatchdogDeps {
  logger: Logger;
  /** The environment function processes inherit. */
  env: NodeJS.ProcessEnv;
  /** Where the function's stdout and stderr lines go. */
  stdout: Writable;
  stderr: Writable;
  /** The interface to listen on; all interfaces by default, as OpenFaaS. */
  host?: string;
  /** Serve Prometheus metrics on metrics_port (default true; off where a host reports its own). */
  serveMetrics?: boolean;
  /** The function process's working directory (default: this process's, as in a container). */
  cwd?: string;
}

/** What a host tells lease() of a call it is about to send. */
export interface LeaseRequest {
  method: string;
  /** The path the function sees, for the call's log line (log_call_id, write_debug). */
  path: string;
  callId: string;
  /** The call's X-Timeout header, if any. */
  timeout?: string | string[];
  bodyBytes: number;
  /** The host's own bound on the call (a gateway's upstream_timeout); 0 or absent for none. */
  hostTimeoutMs?: number;
}

/** Where to send one call, and for how long; release() once it is over, whatever happened. */
export interface WatchdogLease {
  /** The origin (and base path) to send the call's path to. */
  url: string;
  /** Cancel the call after this long (0: no deadline) and answer it `timeoutStatus`. */
  timeoutMs: number;
  timeoutStatus: number;
  /** The call is over, with the status its caller got. */
  release(status: number): void;
}

/** A call lease() turned away, as serve() would have answered it (X-OpenFaaS-Internal). */
export interface LeaseRefusal {
  status: number;
  message: string;
}

function refusal(status: number, message: string): LeaseRefusal {
  return { status, message };
}

/** Where a server bound to `address` is reached from this machine. */
function localAddress(address: AddressInfo): string {
  const host =
    address.address === '::' || address.address === '0.0.0.0' ? '127.0.0.1' : address.address;
  return `${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

export interface ListeningAddresses {
  port: number;
  metricsPort: number;
}

/**
 * The watchdog: an HTTP server in front of a function process. Owns the request lifecycle that
 * every mode shares (limits, deadlines, health, metrics, draining); the mode's handler does the
 * rest. It also runs as a library: a host in the same process (the process provider) hands
 * requests to serve() directly, so a call through the gateway crosses one proxy, not two.
 */
export class Watchdog {
  readonly #config: WatchdogConfig;
  readonly #deps: WatchdogDeps;
  /** Only where served: a host that reports its own (the gateway) keeps none per call. */
  readonly #metrics: WatchdogMetrics | undefined;
  readonly #server: Server;
  readonly #metricsServer: Server | undefined;
  readonly #supervisor: FunctionSupervisor | undefined;
  readonly #proxy: HttpProxy | undefined;
  /** Until start() has prepared the mode (the process launcher, the file server). */
  #handle: (call: Call) => void = (call) => call.failInternally(503, 'the watchdog is starting');
  #launcher: ProcessLauncher | undefined;
  /** Forking modes: why the command cannot be started (not found, not executable), if so. */
  #commandProblem: string | undefined;
  #inFlight = 0;
  #accepting = false;
  #draining = false;
  #drained: (() => void) | undefined;
  #stopping: Promise<void> | undefined;

  constructor(config: WatchdogConfig, deps: WatchdogDeps) {
    this.#config = config;
    this.#deps = deps;
    if (config.mode === 'http') {
      const supervisor = new FunctionSupervisor({
        command: config.command,
        env: deps.env,
        upstream: config.upstreamUrl as URL,
        stdout: deps.stdout,
        stderr: deps.stderr,
        logOptions: { prefix: config.prefixLogs, maxLineBytes: config.logBufferSize },
        logger: deps.logger.child({ component: 'function-process' }),
        stopGraceMs: config.writeTimeoutMs,
        ...(deps.cwd ? { cwd: deps.cwd } : {}),
      });
      const proxy = createHttpProxy(config, () => supervisor.ready);
      this.#supervisor = supervisor;
      this.#proxy = proxy;
      this.#handle = (call) => proxy.handle(call);
    }
    this.#server = createServer(
      {
        requestTimeout: config.readTimeoutMs,
        headersTimeout: Math.min(config.readTimeoutMs || 60_000, 60_000),
        connectionsCheckingInterval: Math.min(Math.max(config.readTimeoutMs / 4, 100), 30_000),
      },
      (req, res) => this.serve(req, res),
    );
    if (deps.serveMetrics !== false) {
      const metrics = new WatchdogMetrics(() => this.#inFlight);
      this.#metrics = metrics;
      this.#metricsServer = createServer((req, res) => this.#onMetricsRequest(metrics, req, res));
    }
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** The long-running process of http mode, if one runs. */
  get functionPid(): number | undefined {
    return this.#supervisor?.pid;
  }

  /**
   * Forking modes: why no call can succeed (`cannot start "cmd": not found in PATH`), found at
   * start; undefined when the command can be started.
   */
  get startProblem(): string | undefined {
    if (this.#commandProblem === undefined) return undefined;
    return `cannot start ${JSON.stringify(this.#config.command[0] ?? '')}: ${this.#commandProblem}`;
  }

  /** How often the function process of http mode has been restarted. */
  get restarts(): number {
    return this.#supervisor?.restarts ?? 0;
  }

  /** Healthy: accepting calls, the lock file present (unless suppressed) and the function up. */
  get healthy(): boolean {
    return (
      this.#accepting &&
      (this.#config.suppressLock || lockFile.exists()) &&
      (this.#supervisor?.ready ?? true) &&
      this.#commandProblem === undefined
    );
  }

  /**
   * Forking modes: looks for the command once, at start, as the process launcher resolves it
   * once. One that cannot be started leaves the watchdog unhealthy (every call would fail: a
   * 500 each), and its log says why, where the function's logs are read. A command installed
   * later needs a restart (a redeploy), as the launcher does.
   */
  #checkCommand(): void {
    const command = this.#config.command[0] ?? '';
    const problem = findExecutable(command, this.#deps.env.PATH, this.#deps.cwd);
    this.#commandProblem = problem;
    if (problem) {
      this.#deps.logger
        .child({ component: 'function-process' })
        .error({ command, reason: problem }, 'cannot start the function process');
    }
  }

  /** Listens, starts the function process (http mode), writes the lock file once ready. */
  async start(signal?: AbortSignal): Promise<ListeningAddresses> {
    await this.#prepareMode();
    const host = this.#deps.host;
    await listen(this.#server, this.#config.port, host);
    if (this.#metricsServer) await listen(this.#metricsServer, this.#config.metricsPort, host);
    if (this.#supervisor) {
      this.#supervisor.start();
      await this.#supervisor.waitUntilReady(signal);
    }
    if (!this.#config.suppressLock) await lockFile.create();
    this.#accepting = true;
    return {
      port: (this.#server.address() as AddressInfo).port,
      metricsPort: (this.#metricsServer?.address() as AddressInfo | null | undefined)?.port ?? 0,
    };
  }

  async #prepareMode(): Promise<void> {
    const config = this.#config;
    const { env, logger, stderr } = this.#deps;
    if (forkingModes.has(config.mode)) {
      this.#checkCommand();
      // Without a command to run, fnbus-spawner would only say so again on the host's stderr.
      const useHelper = config.forkHelper && this.#commandProblem === undefined;
      const launcher = await createLauncher(config.command, env, useHelper, logger, this.#deps.cwd);
      this.#launcher = launcher;
      const deps = { launcher, logStream: stderr };
      this.#handle =
        config.mode === 'streaming'
          ? createStreamingForkHandler(config, deps)
          : createBufferedForkHandler(config, deps);
    } else if (config.mode === 'static') {
      // Loaded here: its file server is the one heavy module, and only this mode needs it.
      const { createStaticHandler } = await import('./static-handler.js');
      this.#handle = createStaticHandler(config.staticPath);
    }
  }

  /**
   * Graceful stop, as on SIGTERM: removes the lock (health fails), keeps serving for
   * healthcheck_interval so load balancers notice, stops accepting, lets calls in flight finish
   * within write_timeout, then stops the function process.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#accepting = false;
    if (!this.#config.suppressLock) await lockFile.remove();
    if (this.#config.healthcheckIntervalMs > 0) await sleep(this.#config.healthcheckIntervalMs);
    this.#draining = true;
    const closed = new Promise((resolve) => this.#server.close(resolve));
    this.#server.closeIdleConnections();
    if (this.#inFlight > 0) {
      const drained = new Promise<void>((resolve) => (this.#drained = resolve));
      const graceOver = sleep(this.#config.writeTimeoutMs, 'timeout' as const);
      if ((await Promise.race([drained, graceOver])) === 'timeout') {
        this.#deps.logger.warn(
          { inFlight: this.#inFlight },
          'write_timeout passed while draining; closing',
        );
      }
    }
    this.#server.closeAllConnections();
    await closed;
    await this.#supervisor?.stop();
    this.#proxy?.close();
    this.#launcher?.close();
    const metricsServer = this.#metricsServer;
    if (metricsServer?.listening) {
      metricsServer.closeAllConnections();
      await new Promise((resolve) => metricsServer.close(resolve));
    }
  }

  /**
   * Serves one request: a probe (`/_/…`) or a call to the function. `hostTimeoutMs` is a host's
   * own bound on the call (a gateway's upstream_timeout): when it is the nearer deadline and
   * passes, the call is cancelled and answered 502.
   */
  serve(req: IncomingMessage, res: ServerResponse, hostTimeoutMs = 0): void {
    const url = req.url ?? '/';
    if (url.startsWith('/_/')) return this.#onProbe(req, res, url);
    if (this.#draining) res.shouldKeepAlive = false;

    const { maxInflight } = this.#config;
    if (maxInflight > 0 && this.#inFlight >= maxInflight) {
      res.writeHead(429, { 'Content-Type': 'text/plain', [internalHeader]: internalValue });
      res.end(`Concurrent request limit exceeded. Max concurrent requests: ${maxInflight}\n`);
      this.#metrics?.observe(req.method ?? 'GET', 429, 0);
      return;
    }

    if (this.#config.debugHeaders) this.#logHeaders(req);
    const timeoutMs = this.#timeoutFor(req.headers['x-timeout']);
    if (timeoutMs === undefined) {
      res.writeHead(400, { 'Content-Type': 'text/plain', [internalHeader]: internalValue });
      res.end(
        `X-Timeout: "${String(req.headers['x-timeout'])}" is not a duration (e.g. 5s, 500ms)\n`,
      );
      return;
    }
    this.#inFlight += 1;
    const hostBound = hostTimeoutMs > 0 && (timeoutMs === 0 || hostTimeoutMs < timeoutMs);
    const call = new Call(req, res, hostBound ? hostTimeoutMs : timeoutMs, this.#onCallClosed);
    if (hostBound) call.hostDeadlineStatus = 502;
    this.#handle(call);
  }

  /**
   * For a host in this process that sends a call over HTTP itself (the queue worker of `fnbus up`,
   * from its own thread): where to send it so that it crosses one HTTP exchange, and the deadline
   * to keep. In http mode that is the function's own process, the call counted in flight here
   * (max_inflight) until `release()`; in the other modes it is this watchdog's port, which counts
   * it as any call. Refused as serve() would refuse it: 503 until ready or while stopping, 429 at
   * max_inflight, 413 over max_request_bytes, 400 for a bad X-Timeout.
   */
  lease(request: LeaseRequest): WatchdogLease | LeaseRefusal {
    const host = request.hostTimeoutMs ?? 0;
    const { maxInflight, maxRequestBytes } = this.#config;
    const upstream = this.#config.mode === 'http' ? this.#config.upstreamUrl : undefined;
    if (!upstream) {
      if (!this.#accepting || this.#draining) return refusal(503, 'the watchdog is not ready');
      const address = this.#server.address() as AddressInfo;
      const url = `http://${localAddress(address)}`;
      // This watchdog serves the call (and counts and logs it) as any other.
      return { url, timeoutMs: host, timeoutStatus: 502, release: () => {} };
    }
    if (!this.#accepting || this.#draining || !this.#supervisor?.ready) {
      return refusal(503, 'the function process is not ready');
    }
    if (maxInflight > 0 && this.#inFlight >= maxInflight) {
      return refusal(
        429,
        `Concurrent request limit exceeded. Max concurrent requests: ${maxInflight}`,
      );
    }
    if (request.bodyBytes > maxRequestBytes) {
      return refusal(413, `request body over ${maxRequestBytes} bytes`);
    }
    const own = this.#timeoutFor(request.timeout);
    if (own === undefined) {
      return refusal(
        400,
        `X-Timeout: "${String(request.timeout)}" is not a duration (e.g. 5s, 500ms)`,
      );
    }
    const hostBound = host > 0 && (own === 0 || host < own);
    this.#inFlight += 1;
    const startedAt = performance.now();
    let released = false;
    return {
      url: upstream.href.replace(/\/$/, ''),
      timeoutMs: hostBound ? host : own,
      timeoutStatus: hostBound ? 502 : 504,
      release: (status) => {
        if (released) return;
        released = true;
        this.#inFlight -= 1;
        if (this.#config.logCallId || this.#config.writeDebug) {
          const { callId, method, path } = request;
          const seconds = (performance.now() - startedAt) / 1000;
          this.#deps.logger.info({ callId, method, path, status, seconds }, 'call');
        }
        if (this.#inFlight === 0) this.#drained?.();
      },
    };
  }

  readonly #onCallClosed = (call: Call): void => {
    const { req, res } = call;
    this.#inFlight -= 1;
    const seconds = call.elapsedSeconds();
    this.#metrics?.observe(req.method ?? 'GET', res.statusCode, seconds);
    if (this.#config.logCallId || this.#config.writeDebug) {
      this.#deps.logger.info(
        {
          callId: req.headers['x-call-id'],
          method: req.method,
          path: req.url,
          status: res.statusCode,
          seconds,
        },
        'call',
      );
    }
    if (this.#inFlight === 0) this.#drained?.();
  };

  #logHeaders(req: IncomingMessage): void {
    this.#deps.logger.info({ headers: req.headers }, 'request headers');
  }

  /** The call's deadline: exec_timeout and write_timeout, shortened (never lengthened) by X-Timeout. */
  #timeoutFor(header: string | string[] | undefined): number | undefined {
    const { execTimeoutMs, writeTimeoutMs } = this.#config;
    let limit = execTimeoutMs > 0 ? Math.min(execTimeoutMs, writeTimeoutMs) : writeTimeoutMs;
    if (typeof header === 'string') {
      const asked = parseDurationMs(header);
      if (asked === undefined) return undefined;
      if (asked > 0) limit = Math.min(limit, asked);
    }
    return limit;
  }

  #onProbe(req: IncomingMessage, res: ServerResponse, url: string): void {
    const path = url.split('?', 1)[0] ?? url;
    if (path !== '/_/health' && path !== '/_/ready') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (!this.healthy) {
      res.writeHead(503, { 'Content-Type': 'text/plain' }).end('not ready\n');
      return;
    }
    if (path === '/_/health') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
      return;
    }
    const { maxInflight, readyPath } = this.#config;
    if (maxInflight > 0 && this.#inFlight >= maxInflight) {
      res
        .writeHead(429, { 'Content-Type': 'text/plain' })
        .end(`at capacity: ${maxInflight} in flight\n`);
      return;
    }
    if (readyPath && this.#proxy) {
      void this.#proxy.probe(readyPath, 1000).then((ok) => {
        res
          .writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' })
          .end(ok ? 'OK' : `${readyPath} is not ready\n`);
      });
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
  }

  #onMetricsRequest(metrics: WatchdogMetrics, req: IncomingMessage, res: ServerResponse): void {
    if (req.url?.split('?', 1)[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': metrics.contentType }).end(metrics.render());
  }
}

function listen(server: Server, port: number, host: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
