import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import type { FunctionStatus, StringMap } from '../../core/function-types.js';
import type { GatewayInfo } from '../../core/info-types.js';
import { gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

/** `fnbus describe NAME`: one function's status, replicas, invocations, image and process. */
export function registerDescribeCommand(program: Command): void {
  gatewayOptions(
    program
      .command('describe <name>')
      .description('show a deployed function: status, replicas, invocations, image, process')
      .option('-n, --namespace <namespace>', 'the namespace'),
  )
    .addHelpText('after', helpExamples('fnbus describe hello'))
    .action(describe);
}

async function describe(name: string, options: GatewayOptions & { namespace?: string }) {
  const { openGateway } = await import('../open-gateway.js');
  const gateway = openGateway(options);
  const fn = await gateway.json<FunctionStatus>(`/system/function/${encodeURIComponent(name)}`, {
    namespace: options.namespace,
  });
  const available = fn.availableReplicas ?? 0;
  const lines: [string, string][] = [
    ['Name', fn.name],
    ['Namespace', fn.namespace ?? ''],
    ['Status', available > 0 ? 'Ready' : 'Not Ready'],
    ['Replicas', String(fn.replicas ?? 0)],
    ['Available Replicas', String(available)],
    ['Invocations', String(fn.invocationCount ?? 0)],
    ['Image', fn.image || '-'],
    ['Function Process', fn.envProcess || '-'],
    ['Labels', formatMap(fn.labels)],
    ['Annotations', formatMap(fn.annotations)],
    ['Created', fn.createdAt],
  ];
  let text = lines.map(([key, value]) => `${`${key}:`.padEnd(20)}${value}\n`).join('');
  const info = await gateway.json<GatewayInfo>('/system/info');
  if (info.provider?.orchestration === 'process') {
    const what = fn.envProcess ? 'its Function Process' : 'what fnbus build made of the image';
    text += `\nNote: on the process provider the image is kept but not run: the function runs ${what}.\n`;
  }
  print(text);
}

function formatMap(map: StringMap | null | undefined): string {
  const entries = Object.entries(map ?? {});
  if (entries.length === 0) return '-';
  return entries.map(([k, v]) => `${k}=${v}`).join(', ');
}
