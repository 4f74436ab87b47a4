import type { Command } from 'commander';
import { ValidationError } from '../core/errors.js';
import type { CallRecord, DeadLetter, DeadLetterPage } from '../core/queue.js';
import { client, gatewayOptions, print, table } from './client-commands.js';
import type { GatewayOptions } from '../client/gateway-client.js';

interface SelectionOptions extends GatewayOptions {
  function?: string;
  all?: boolean;
}

interface ListOptions extends GatewayOptions {
  function?: string;
  json?: boolean;
  limit?: string;
  cursor?: string;
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
      .description(
        'list the dead letters, oldest first, every page (or one: --limit, --cursor); no bodies',
      )
      .option('--function <name>', 'only this function’s')
      .option('--limit <n>', 'one page of at most n letters (1-1000); its next cursor printed last')
      .option('--cursor <cursor>', 'one page, from where an earlier page ended')
      .option('--json', 'the gateway’s JSON (every page: one array of letters)'),
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

/**
 * One page when asked (`--limit`, `--cursor`), else every page in turn, each printed as it comes:
 * the gateway pages the letters, so neither side holds them all.
 */
async function listDeadLetters(options: ListOptions) {
  const gateway = client(options);
  const onePage = options.limit !== undefined || options.cursor !== undefined;
  const header = ['CALL', 'FUNCTION', 'ATTEMPTS', 'STATUS', 'SINCE', 'REASON'];
  let cursor = options.cursor;
  let listed = 0;
  if (options.json && !onePage) print('[');
  do {
    const page = await gateway.json<DeadLetterPage>('/system/dead-letters', {
      ...(options.function ? { function: options.function } : {}),
      ...(options.limit ? { limit: options.limit } : {}),
      ...(cursor ? { cursor } : {}),
    });
    cursor = page.next;
    if (options.json) {
      if (onePage) print(`${JSON.stringify(page, null, 2)}\n`);
      else {
        for (const letter of page.items) {
          print(`${listed === 0 ? '\n' : ',\n'}${JSON.stringify(letter)}`);
          listed += 1;
        }
      }
    } else if (page.items.length > 0) {
      const rows = page.items.map((letter) => [
        letter.callId,
        letter.function,
        String(letter.attempts.length),
        letter.lastStatus === undefined ? '-' : String(letter.lastStatus),
        letter.updatedAt,
        letter.reason ?? '',
      ]);
      const text = table([header, ...rows]);
      // The header once, above the first page.
      print(listed === 0 ? text : text.slice(text.indexOf('\n') + 1));
      listed += rows.length;
    }
  } while (cursor !== undefined && !onePage);
  if (options.json) {
    if (!onePage) print(listed === 0 ? ']\n' : '\n]\n');
    return;
  }
  if (listed === 0) print('no dead letters\n');
  if (onePage && cursor !== undefined) print(`next: --cursor ${cursor}\n`);
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
