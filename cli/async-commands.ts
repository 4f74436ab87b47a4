import type { Command } from 'commander';
import { ValidationError } from '../core/errors.js';
import type { CallRecord, DeadLetter } from '../core/queue.js';
import { client, gatewayOptions, print, table } from './client-commands.js';
import type { GatewayOptions } from '../client/gateway-client.js';

interface SelectionOptions extends GatewayOptions {
  function?: string;
  all?: boolean;
}

/**
 * The async path's commands: `call CALL_ID` (where a queued call is), `cancel CALL_ID` (one that
 * still waits) and `dlq list|show|redrive|purge` (the dead letters). `invoke --async` is with
 * invoke.
 */
export function registerAsyncCommands(program: Command): void {
  gatewayOptions(
    program
      .command('call <callId>')
      .description('show an async call: state, attempts, last status')
      .option('--json', 'the gateway’s JSON'),
  ).action(showCall);
  gatewayOptions(
    program.command('cancel <callId>').description('cancel an async call that still waits'),
  ).action(cancelCall);

  const dlq = program.command('dlq').description('dead letters: list, show, redrive, purge');
  gatewayOptions(
    dlq
      .command('list')
      .alias('ls')
      .description('list the dead letters')
      .option('--function <name>', 'only this function’s')
      .option('--json', 'the gateway’s JSON'),
  ).action(listDeadLetters);
  gatewayOptions(
    dlq.command('show <callId>').description('one dead letter, whole, as JSON'),
  ).action(showDeadLetter);
  for (const verb of ['redrive', 'purge'] as const) {
    gatewayOptions(
      dlq
        .command(`${verb} [callId]`)
        .description(
          verb === 'redrive'
            ? 'queue dead letters again: one, a function’s (--function) or all (--all)'
            : 'delete dead letters: one, a function’s (--function) or all (--all)',
        )
        .option('--function <name>', 'every dead letter of this function')
        .option('--all', 'every dead letter'),
    ).action((callId: string | undefined, options: SelectionOptions) =>
      verb === 'redrive' ? redrive(callId, options) : purge(callId, options),
    );
  }
}

async function showCall(callId: string, options: GatewayOptions & { json?: boolean }) {
  const record = await client(options).json<CallRecord>(
    `/system/calls/${encodeURIComponent(callId)}`,
  );
  if (options.json) {
    print(`${JSON.stringify(record, null, 2)}\n`);
    return;
  }
  const lines: [string, string][] = [
    ['Call', record.callId],
    ['Function', record.function],
    ['State', record.state],
    ['Queued', record.enqueuedAt],
    ['Updated', record.updatedAt],
  ];
  if (record.nextAttemptAt) lines.push(['Next attempt', record.nextAttemptAt]);
  if (record.lastStatus !== undefined) lines.push(['Last status', String(record.lastStatus)]);
  if (record.reason) lines.push(['Reason', record.reason]);
  let text = lines.map(([key, value]) => `${`${key}:`.padEnd(14)}${value}\n`).join('');
  if (record.attempts.length > 0) {
    text += 'Attempts:\n';
    for (const attempt of record.attempts) {
      const outcome = attempt.status !== undefined ? `status ${attempt.status}` : attempt.error;
      text += `  ${attempt.attempt}. ${attempt.startedAt}  ${outcome ?? ''}  ${attempt.durationMs} ms\n`;
    }
  }
  print(text);
}

async function cancelCall(callId: string, options: GatewayOptions) {
  await client(options).system('DELETE', `/system/calls/${encodeURIComponent(callId)}`);
  print(`cancelled ${callId}\n`);
}

async function listDeadLetters(options: GatewayOptions & { function?: string; json?: boolean }) {
  const letters = await client(options).json<DeadLetter[]>(
    '/system/dead-letters',
    options.function ? { function: options.function } : undefined,
  );
  if (options.json) {
    print(`${JSON.stringify(letters, null, 2)}\n`);
    return;
  }
  if (letters.length === 0) {
    print('no dead letters\n');
    return;
  }
  const rows = letters.map((letter) => [
    letter.callId,
    letter.function,
    String(letter.attempts.length),
    letter.lastStatus === undefined ? '-' : String(letter.lastStatus),
    letter.updatedAt,
    letter.reason ?? '',
  ]);
  print(table([['CALL', 'FUNCTION', 'ATTEMPTS', 'STATUS', 'SINCE', 'REASON'], ...rows]));
}

async function showDeadLetter(callId: string, options: GatewayOptions) {
  const letter = await client(options).json<DeadLetter>(
    `/system/dead-letters/${encodeURIComponent(callId)}`,
  );
  print(`${JSON.stringify(letter, null, 2)}\n`);
}

async function redrive(callId: string | undefined, options: SelectionOptions) {
  const res = await client(options).system(
    'POST',
    '/system/dead-letters/redrive',
    selection(callId, options),
  );
  const { callIds } = JSON.parse(res.body.toString('utf8')) as { callIds: string[] };
  print(`queued again: ${callIds.length}\n${callIds.map((id) => `${id}\n`).join('')}`);
}

async function purge(callId: string | undefined, options: SelectionOptions) {
  const res = await client(options).system(
    'DELETE',
    '/system/dead-letters',
    selection(callId, options),
  );
  const { purged } = JSON.parse(res.body.toString('utf8')) as { purged: number };
  print(`purged: ${purged}\n`);
}

/** Exactly one of a call id, --function, --all: acting on everything is never a default. */
function selection(callId: string | undefined, options: SelectionOptions) {
  const given = [callId !== undefined, options.function !== undefined, options.all === true];
  if (given.filter(Boolean).length !== 1) {
    throw new ValidationError('name one call id, or --function NAME, or --all');
  }
  if (callId !== undefined) return { callId };
  if (options.function !== undefined) return { function: options.function };
  return { all: true };
}
