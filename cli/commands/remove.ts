import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import { gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

/** `fnbus remove NAME`: removes a deployed function. */
export function registerRemoveCommand(program: Command): void {
  gatewayOptions(
    program
      .command('remove <name>')
      .alias('rm')
      .description('remove a deployed function')
      .option('-n, --namespace <namespace>', 'the namespace'),
  )
    .addHelpText('after', helpExamples('fnbus remove hello'))
    .action(remove);
}

async function remove(name: string, options: GatewayOptions & { namespace?: string }) {
  const { openGateway } = await import('../open-gateway.js');
  await openGateway(options).system('DELETE', '/system/functions', {
    functionName: name,
    ...(options.namespace ? { namespace: options.namespace } : {}),
  });
  print(`removed ${name}\n`);
}
