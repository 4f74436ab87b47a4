import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import { gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

/** `fnbus cancel CALL_ID`: a call that still waits; a running or finished one is a 409. */
export function registerCancelCommand(program: Command): void {
  gatewayOptions(
    program.command('cancel <callId>').description('cancel an async call that still waits'),
  )
    .addHelpText('after', helpExamples('fnbus cancel "$id"'))
    .action(async (callId: string, options: GatewayOptions) => {
      const { openGateway } = await import('../open-gateway.js');
      await openGateway(options).system('DELETE', `/system/calls/${encodeURIComponent(callId)}`);
      print(`cancelled ${callId}\n`);
    });
}
