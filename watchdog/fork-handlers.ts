import type { Writable } from 'node:stream';
import type { WatchdogConfig } from './config.js';
import { BodyTooLargeError, type Call, readBody, refuseLargeBody } from './call.js';
import { cgiEnvironment, marshalRequest } from './cgi-env.js';
import { logOutput, logTimestamp } from './output-log.js';
import { describeExit, type FunctionProcess, type ProcessLauncher } from './spawner.js';

export interface ForkDeps {
  /** Starts one process per call, with the watchdog's environment plus the CGI variables. */
  launcher: ProcessLauncher;
  /** Where function output that is not part of the response goes: the watchdog's log. */
  logStream: Writable;
}

/** The methods OpenFaaS's classic watchdog forks for; others get a 405. */
const classicMethods = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * One line of the watchdog's log about a call, as OpenFaaS's classic watchdog writes them (Go's
 * log package: date, time, message): `Forking fprocess.`, `Wrote 12 Bytes - Duration: 0.004512s`,
 * `Success=false, Error=exit status 1`. `fnbus logs` and `faas-cli logs` show calls and failures
 * with them.
 */
function logCall(deps: ForkDeps, message: string): void {
  deps.logStream.write(`${logTimestamp()} ${message}\n`);
}

function logFailure(deps: ForkDeps, reason: string): void {
  logCall(deps, `Success=false, Error=${reason}`);
}

/** The output as one log line's worth: the first KiB, with newlines as `\n`. */
function excerpt(body: Buffer): string {
  const text = body.subarray(0, 1024).toString('utf8').trimEnd().replaceAll('\n', '\\n');
  return body.length > 1024 ? `${text}...` : text;
}

function startProcess(call: Call, config: WatchdogConfig, deps: ForkDeps): FunctionProcess {
  logCall(deps, 'Forking fprocess.');
  const child = deps.launcher.launch(config.cgiHeaders ? cgiEnvironment(call.req) : {});
  // Past the deadline, or once the caller has gone away (nobody is left to read the answer).
  call.work = {
    cancel: () => {
      if (call.timedOut) logCall(deps, `Killing process: ${config.command.join(' ')}`);
      child.kill('SIGKILL');
    },
  };
  if (config.marshalRequest) {
    readBody(call.req, config.maxRequestBytes, (error, body) => {
      if (error instanceof BodyTooLargeError) refuseLargeBody(call, config.maxRequestBytes);
      if (error) child.kill('SIGKILL');
      else child.stdin.end(marshalRequest(call.req, body));
    });
  } else {
    call.req.pipe(child.stdin);
  }
  if (!config.combineOutput) {
    logOutput(child.stderr, 'stderr', deps.logStream, {
      prefix: config.prefixLogs,
      maxLineBytes: config.logBufferSize,
    });
  }
  return child;
}

function reply(call: Call, status: number, contentType: string | undefined, body: Buffer): void {
  const headers: Record<string, string | number> = {
    'Content-Length': body.length,
    'X-Duration-Seconds': call.durationSeconds(),
  };
  if (contentType) headers['Content-Type'] = contentType;
  call.res.writeHead(status, headers);
  call.res.end(body);
}

function contentTypeFor(call: Call, config: WatchdogConfig): string | undefined {
  return config.contentType ?? call.req.headers['content-type'];
}

/**
 * `fork` (classic watchdog) and `serializing` modes: one process per request, its whole stdout
 * (plus stderr with combine_output) buffered into the response; 200 on exit 0, 500 with the
 * reason otherwise, 408 when the deadline killed it.
 */
export function createBufferedForkHandler(config: WatchdogConfig, deps: ForkDeps) {
  const methods = config.mode === 'fork' ? classicMethods : undefined;
  return (call: Call): void => {
    const { req, res } = call;
    if (methods && !methods.has(req.method ?? '')) {
      res.setHeader('Allow', [...methods].join(', '));
      call.failInternally(
        405,
        `method ${req.method} is not allowed; use ${[...methods].join(', ')}`,
      );
      return;
    }
    const contentLength = Number(req.headers['content-length'] ?? 0);
    if (config.marshalRequest && contentLength > config.maxRequestBytes) {
      refuseLargeBody(call, config.maxRequestBytes);
      return;
    }
    const child = startProcess(call, config, deps);
    let output: Buffer[] = [];
    let outputBytes = 0;
    // The answer is sent once the process exits (its status depends on the exit): the output is
    // held until then, up to max_response_bytes; past that the process is killed and 502 told.
    const keep = (chunk: Buffer) => {
      if (outputBytes > config.maxResponseBytes) return; // over already: being killed
      outputBytes += chunk.length;
      if (outputBytes <= config.maxResponseBytes) output.push(chunk);
      else {
        output = [];
        child.kill('SIGKILL');
      }
    };
    child.stdout.on('data', keep);
    if (config.combineOutput) child.stderr.on('data', keep);

    void child.exited.then((exit) => {
      if (res.destroyed || res.writableEnded) return; // answered already (413)
      if (outputBytes > config.maxResponseBytes) {
        logFailure(deps, `output over max_response_bytes (${config.maxResponseBytes})`);
        return call.failInternally(
          502,
          `the function's output is over max_response_bytes (${config.maxResponseBytes}): use mode=streaming to stream it`,
        );
      }
      if (call.timedOut) return call.failInternally(408, 'Killed process.');
      if (exit.error) {
        logFailure(deps, describeExit(exit, config.command));
        return call.failInternally(500, describeExit(exit, config.command));
      }
      const body = output.length === 1 ? (output[0] as Buffer) : Buffer.concat(output);
      if (config.writeDebug) {
        deps.logStream.write(
          `${logTimestamp()} ${describeExit(exit, config.command)}, output: ${body.toString()}\n`,
        );
      }
      if (exit.code !== 0) {
        // The function failed: that is its answer, not a watchdog error, so it is not marked internal.
        logFailure(deps, describeExit(exit, config.command));
        // Its stderr is in the output (combine_output): the log says why it failed, as the
        // classic watchdog's `Out=` does, cut short.
        if (config.combineOutput && body.length > 0) logCall(deps, `Out=${excerpt(body)}`);
        const reason = Buffer.from(`${describeExit(exit, config.command)}\n`);
        return reply(call, 500, 'text/plain; charset=utf-8', Buffer.concat([reason, body]));
      }
      reply(call, 200, contentTypeFor(call, config), body);
      logCall(deps, `Wrote ${body.length} Bytes - Duration: ${call.durationSeconds()}s`);
    });
  };
}

/**
 * `streaming` mode: one process per request, the request body piped to its stdin and its stdout
 * streamed to the caller as it comes, with backpressure both ways. Headers go out with the first
 * byte of output, so a process that fails before writing anything still gets an honest 500;
 * one that fails after has its response cut, never completed as if it had succeeded.
 */
export function createStreamingForkHandler(config: WatchdogConfig, deps: ForkDeps) {
  return (call: Call): void => {
    const { res } = call;
    const child = startProcess(call, config, deps);
    const begin = () => {
      if (res.headersSent) return;
      const contentType = contentTypeFor(call, config);
      if (contentType) res.setHeader('Content-Type', contentType);
      // Time to first byte: the total is not known until the stream ends.
      res.setHeader('X-Duration-Seconds', call.durationSeconds());
      res.writeHead(200);
    };
    let written = 0;
    const forward = (chunk: Buffer, from: FunctionProcess['stdout']) => {
      begin();
      written += chunk.length;
      if (!res.write(chunk)) {
        from.pause();
        res.once('drain', () => from.resume());
      }
    };
    child.stdout.on('data', (chunk: Buffer) => forward(chunk, child.stdout));
    if (config.combineOutput)
      child.stderr.on('data', (chunk: Buffer) => forward(chunk, child.stderr));

    void child.exited.then((exit) => {
      if (res.destroyed) return;
      if (call.timedOut) return call.failInternally(408, 'Killed process.');
      if (exit.error) {
        logFailure(deps, describeExit(exit, config.command));
        return call.failInternally(500, describeExit(exit, config.command));
      }
      if (exit.code !== 0) {
        logFailure(deps, describeExit(exit, config.command));
        if (res.headersSent) return void res.destroy();
        res.writeHead(500, {
          'Content-Type': 'text/plain; charset=utf-8',
          'X-Duration-Seconds': call.durationSeconds(),
        });
        return void res.end(`${describeExit(exit, config.command)}\n`);
      }
      begin();
      res.end();
      logCall(deps, `Wrote ${written} Bytes - Duration: ${call.durationSeconds()}s`);
    });
  };
}
