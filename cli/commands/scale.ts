import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import { ValidationError } from '../../core/errors.js';
import { gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

/** `fnbus scale NAME --replicas N`. */
export function registerScaleCommand(program: Command): void {
  gatewayOptions(
    program
      .command('scale <name>')
      .description('set the number of replicas of a function')
      .requiredOption('--replicas <n>', 'the number of replicas (0 or more)')
      .option('-n, --namespace <namespace>', 'the namespace'),
  )
    .addHelpText('after', helpExamples('fnbus scale hello --replicas 3'))
    .action(scale);
}

async function scale(
  name: string,
  options: GatewayOptions & { replicas: string; namespace?: string },
): Promise<void> {
  if (!/^\d+$/.test(options.replicas) || !Number.isSafeInteger(Number(options.replicas))) {
    throw new ValidationError(
      `--replicas must be a whole number, 0 or more, not "${options.replicas}"`,
    );
  }
  const replicas = Number(options.replicas);
  const { openGateway } = await import('../open-gateway.js');
  await openGateway(options).system('POST', `/system/scale-function/${encodeURIComponent(name)}`, {
    serviceName: name,
    replicas,
    ...(options.namespace ? { namespace: options.namespace } : {}),
  });
  print(`scaled ${name} to ${replicas} replica${replicas === 1 ? '' : 's'}\n`);
}
