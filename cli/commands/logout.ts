import type { Command } from 'commander';
import { ValidationError } from '../../core/errors.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

/** `fnbus logout`: forgets the login kept for a gateway (fnbus's and faas-cli's). */
export function registerLogoutCommand(program: Command): void {
  program
    .command('logout')
    .description('forget the user and password kept for a gateway')
    .option(
      '-g, --gateway <url>',
      'the gateway (default: $FNBUS_GATEWAY, else $OPENFAAS_URL, else http://127.0.0.1:8080)',
    )
    .addHelpText('after', helpExamples('fnbus logout --gateway http://127.0.0.1:8080'))
    .action(async (options: { gateway?: string }) => {
      const { gatewayUrl } = await import('../../client/gateway-client.js');
      const { normaliseGateway, removeCredentials } =
        await import('../../client/openfaas-config.js');
      const gateway = normaliseGateway(gatewayUrl(options, process.env));
      if (!removeCredentials(gateway, process.env)) {
        throw new ValidationError(`no credentials are kept for ${gateway}`);
      }
      print(`credentials removed for ${gateway}\n`);
    });
}
