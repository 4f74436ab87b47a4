import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import type { FunctionStatus } from '../../core/function-types.js';
import { gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print, table } from '../print.js';

interface ListOptions extends GatewayOptions {
  verbose?: boolean;
  json?: boolean;
  namespace?: string;
}

/** `fnbus list`: the deployed functions' names, a table (-v) or the gateway's JSON. */
export function registerListCommand(program: Command): void {
  gatewayOptions(
    program
      .command('list')
      .alias('ls')
      .description('list the deployed functions')
      .option('-v, --verbose', 'a table with image, invocations and replicas')
      .option('--json', 'the gateway’s JSON')
      .option('-n, --namespace <namespace>', 'the namespace'),
  )
    .addHelpText('after', helpExamples('fnbus list -v', 'fnbus list --json -g http://hub:8080'))
    .action(list);
}

async function list(options: ListOptions): Promise<void> {
  const { openGateway } = await import('../open-gateway.js');
  const functions = await openGateway(options).json<FunctionStatus[]>('/system/functions', {
    namespace: options.namespace,
  });
  functions.sort((a, b) => a.name.localeCompare(b.name));
  if (options.json) {
    print(`${JSON.stringify(functions, null, 2)}\n`);
    return;
  }
  if (!options.verbose) {
    print(functions.map((fn) => `${fn.name}\n`).join(''));
    return;
  }
  const rows = [
    ['FUNCTION', 'IMAGE', 'INVOCATIONS', 'REPLICAS', 'AVAILABLE'],
    ...functions.map((fn) => [
      fn.name,
      fn.image || '-',
      String(fn.invocationCount ?? 0),
      String(fn.replicas ?? 0),
      String(fn.availableReplicas ?? 0),
    ]),
  ];
  print(table(rows));
}
