import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import { parseDurationMs } from '../../core/duration.js';
import { FnbusError, ValidationError } from '../../core/errors.js';
import type { LogMessage } from '../../core/log-types.js';
import { gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

interface LogsOptions extends GatewayOptions {
  follow?: boolean;
  tail?: string;
  since?: string;
  output: string;
  instance?: string;
  namespace?: string;
}

/** `fnbus logs NAME`: `/system/logs` as it streams, in faas-cli's text format or as NDJSON. */
export function registerLogsCommand(program: Command): void {
  gatewayOptions(
    program
      .command('logs <name>')
      .description('print a function’s log lines; --follow streams new ones until Ctrl-C')
      .option('--follow', 'keep printing lines as they are written, until interrupted')
      .option('--tail <n>', 'only the last N lines')
      .option('--since <when>', 'only lines since a duration ago (10m, 1h30m) or an RFC 3339 time')
      .option('-o, --output <format>', 'text (TIMESTAMP NAME (INSTANCE) TEXT) or json', 'text')
      .option('--instance <id>', 'only the lines of this replica')
      .option('-n, --namespace <namespace>', 'the namespace'),
  )
    .addHelpText(
      'after',
      helpExamples('fnbus logs hello --since 10m', 'fnbus logs hello --follow --tail 20'),
    )
    .action(logs);
}

/** RFC 3339 date-time with a zone, as the gateway's `since` takes it. */
const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** `--since`: a duration ago (`10m`), or an RFC 3339 time as given. */
export function sinceTime(text: string, now = Date.now()): string {
  const ms = parseDurationMs(text);
  if (ms !== undefined) return new Date(now - ms).toISOString();
  if (rfc3339.test(text) && !Number.isNaN(new Date(text).getTime())) return text;
  throw new ValidationError(
    `--since takes a duration (e.g. 10m) or an RFC 3339 time (e.g. 2024-01-02T15:04:05Z), not "${text}"`,
  );
}

async function logs(name: string, options: LogsOptions): Promise<void> {
  if (options.output !== 'text' && options.output !== 'json') {
    throw new ValidationError(`--output takes text or json, not "${options.output}"`);
  }
  if (options.tail !== undefined && !/^\d+$/.test(options.tail)) {
    throw new ValidationError(`--tail must be a whole number, 0 or more, not "${options.tail}"`);
  }
  const since = options.since === undefined ? undefined : sinceTime(options.since);
  const { openGateway } = await import('../open-gateway.js');
  const { GatewayError } = await import('../../client/gateway-client.js');
  const gateway = openGateway(options);
  /** faas-cli's plain format: `TIMESTAMP NAME (INSTANCE) TEXT`. */
  const format = (line: string): string => {
    if (options.output === 'json') return `${line}\n`;
    let message: Partial<LogMessage>;
    try {
      message = JSON.parse(line) as Partial<LogMessage>;
    } catch (error) {
      throw new GatewayError(502, 'the gateway sent a log line that is not JSON', {
        cause: error,
      });
    }
    const text = (message.text ?? '').replace(/\r?\n$/, '');
    return `${message.timestamp ?? ''} ${message.name ?? ''} (${message.instance ?? ''}) ${text}\n`;
  };
  // Ctrl-C ends a follow cleanly: the stream is closed and the command exits 0.
  const aborter = new AbortController();
  const interrupt = () => aborter.abort();
  process.once('SIGINT', interrupt);
  try {
    const res = await gateway.stream('GET', '/system/logs', {
      query: {
        name,
        namespace: options.namespace,
        instance: options.instance,
        tail: options.tail,
        since,
        follow: options.follow ? 'true' : 'false',
      },
      signal: aborter.signal,
    });
    let pending = '';
    for await (const chunk of res.body) {
      pending += (chunk as Buffer).toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      const text = lines
        .filter((line) => line.trim() !== '')
        .map(format)
        .join('');
      if (text) print(text);
    }
    if (pending.trim() !== '') print(format(pending));
  } catch (error) {
    if (aborter.signal.aborted) return;
    if (error instanceof FnbusError) throw error;
    throw new GatewayError(
      503,
      `the log stream from ${gateway.target.url} broke: ${String(error)}`,
      { cause: error },
    );
  } finally {
    process.removeListener('SIGINT', interrupt);
  }
}
