import type { Command } from 'commander';
import type { GatewayClient, GatewayOptions } from '../../client/gateway-client.js';
import { FnbusError } from '../../core/errors.js';
import type { GatewayInfo } from '../../core/info-types.js';
import { version as cliVersion } from '../../watchdog/version.js';
import { gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

/** `fnbus version`: the CLI's, then the gateway's and provider's when one answers. */
export function registerVersionCommand(program: Command): void {
  gatewayOptions(
    program
      .command('version')
      .description('print the version, and the gateway’s and provider’s when one is reachable'),
  )
    .addHelpText('after', helpExamples('fnbus version', 'fnbus version -g http://hub:8080'))
    .action(showVersion);
}

/**
 * The CLI's version on the first line (alone, for scripts); then the gateway's and provider's
 * from `/system/info` when a gateway answers within a few seconds, else a one-line note on
 * stderr. Never an error.
 */
async function showVersion(options: GatewayOptions): Promise<void> {
  print(`${cliVersion}\n`);
  let gateway: GatewayClient;
  let info: GatewayInfo;
  try {
    const { openGateway } = await import('../open-gateway.js');
    const { refusal } = await import('../../client/gateway-client.js');
    gateway = openGateway(options);
    const res = await gateway.call('GET', '/system/info', { signal: AbortSignal.timeout(3000) });
    if (res.status < 200 || res.status >= 300) throw refusal(res);
    info = JSON.parse(res.body.toString('utf8')) as GatewayInfo;
  } catch (error) {
    if (!(error instanceof FnbusError) && !(error instanceof SyntaxError)) throw error;
    process.stderr.write(`fnbus: note: the CLI version only; ${error.message}\n`);
    return;
  }
  const provider = info.provider;
  print(
    `gateway: ${gateway.target.url} version ${info.version?.release ?? '-'}${sha(info.version?.sha)}\n` +
      `provider: ${provider?.provider ?? '-'} version ${provider?.version?.release ?? '-'}` +
      `${sha(provider?.version?.sha)}` +
      `${provider?.orchestration ? ` (${provider.orchestration})` : ''}\n`,
  );
}

/** ` sha 1a2b3c4` (a commit, shortened as git does), ` sha unknown`, or nothing when not given. */
function sha(value: string | undefined): string {
  if (!value) return '';
  return ` sha ${/^[0-9a-f]{40,64}$/.test(value) ? value.slice(0, 7) : value}`;
}
