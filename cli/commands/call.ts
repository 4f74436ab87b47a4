import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import type { CallRecord } from '../../core/queue.js';
import { gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

/** `fnbus call CALL_ID`: where a queued call is (state, attempts, last status). */
export function registerCallCommand(program: Command): void {
  gatewayOptions(
    program
      .command('call <callId>')
      .description('show an async call: state, attempts, last status')
      .option('--json', 'the gateway’s JSON'),
  )
    .addHelpText('after', helpExamples('fnbus call 0f8c2d4e-...', 'fnbus call "$id" --json'))
    .action(showCall);
}

async function showCall(callId: string, options: GatewayOptions & { json?: boolean }) {
  const { openGateway } = await import('../open-gateway.js');
  const record = await openGateway(options).json<CallRecord>(
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
