import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import { ValidationError } from '../../core/errors.js';
import { headerText } from '../../core/http-headers.js';
import type { DeadLetter, DeadLetterPage } from '../../core/queue.js';
import { gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print, table } from '../print.js';

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

/** `fnbus dlq list|show|redrive|purge`: the dead letters of the async path. */
export function registerDlqCommand(program: Command): void {
  const dlq = program
    .command('dlq')
    .description('dead letters: list, show, redrive, purge')
    .addHelpText(
      'after',
      helpExamples(
        'fnbus dlq list --function hello',
        'fnbus dlq show "$id"',
        'fnbus dlq redrive --function hello',
      ),
    );
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
  )
    .addHelpText('after', helpExamples('fnbus dlq list', 'fnbus dlq list --limit 50 --json'))
    .action(listDeadLetters);
  gatewayOptions(dlq.command('show <callId>').description('one dead letter, whole, as JSON'))
    .addHelpText('after', helpExamples('fnbus dlq show "$id"'))
    .action(showDeadLetter);
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
    )
      .addHelpText(
        'after',
        helpExamples(`fnbus dlq ${verb} "$id"`, `fnbus dlq ${verb} --function hello`),
      )
      .action((callId: string | undefined, options: SelectionOptions) =>
        verb === 'redrive' ? redrive(callId, options) : purge(callId, options),
      );
  }
}

/**
 * One page when asked (`--limit`, `--cursor`), else every page in turn, each printed as it comes:
 * the gateway pages the letters, so neither side holds them all.
 */
async function listDeadLetters(options: ListOptions) {
  const { openGateway } = await import('../open-gateway.js');
  const gateway = openGateway(options);
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
  const { openGateway } = await import('../open-gateway.js');
  const letter = await openGateway(options).json<DeadLetter>(
    `/system/dead-letters/${encodeURIComponent(callId)}`,
  );
  // Header values come as their bytes on the wire; shown as the text they are when UTF-8.
  const header = Object.fromEntries(
    Object.entries(letter.request.Header ?? {}).map(([name, values]) => [
      name,
      values.map(headerText),
    ]),
  );
  print(
    `${JSON.stringify({ ...letter, request: { ...letter.request, Header: header } }, null, 2)}\n`,
  );
}

async function redrive(callId: string | undefined, options: SelectionOptions) {
  const body = selection(callId, options);
  const { openGateway } = await import('../open-gateway.js');
  const res = await openGateway(options).system('POST', '/system/dead-letters/redrive', body);
  const { callIds } = JSON.parse(res.body.toString('utf8')) as { callIds: string[] };
  print(`queued again: ${callIds.length}\n${callIds.map((id) => `${id}\n`).join('')}`);
}

async function purge(callId: string | undefined, options: SelectionOptions) {
  const body = selection(callId, options);
  const { openGateway } = await import('../open-gateway.js');
  const res = await openGateway(options).system('DELETE', '/system/dead-letters', body);
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
