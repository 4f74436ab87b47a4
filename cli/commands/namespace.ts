import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import { ValidationError } from '../../core/errors.js';
import type { FunctionNamespace, StringMap } from '../../core/function-types.js';
import { collect, gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

interface NamespaceOptions extends GatewayOptions {
  label: string[];
  annotation: string[];
}

/** `fnbus namespace list|get|create|update|remove`, as faas-cli's `namespace` commands. */
export function registerNamespaceCommand(program: Command): void {
  const namespace = program
    .command('namespace')
    .alias('ns')
    .description('manage namespaces: list, get, create, update, remove')
    .addHelpText(
      'after',
      helpExamples(
        'fnbus namespace create staging --label team=a',
        'fnbus namespace list',
        'fnbus deploy -f stack.yml --namespace staging',
      ),
    );
  gatewayOptions(namespace.command('list').alias('ls').description('list the namespaces'))
    .addHelpText('after', helpExamples('fnbus namespace list'))
    .action(listNamespaces);
  gatewayOptions(
    namespace.command('get <name>').description("a namespace's labels and annotations"),
  )
    .addHelpText('after', helpExamples('fnbus namespace get staging'))
    .action(getNamespace);
  for (const verb of ['create', 'update'] as const) {
    gatewayOptions(
      namespace
        .command(`${verb} <name>`)
        .description(
          verb === 'create' ? 'create a namespace' : "replace a namespace's labels and annotations",
        )
        .option('-l, --label <key=value>', 'a label (repeatable)', collect, [])
        .option('--annotation <key=value>', 'an annotation (repeatable)', collect, []),
    )
      .addHelpText('after', helpExamples(`fnbus namespace ${verb} staging --label team=a`))
      .action((name: string, options: NamespaceOptions) => writeNamespace(verb, name, options));
  }
  gatewayOptions(namespace.command('remove <name>').alias('rm').description('remove a namespace'))
    .addHelpText('after', helpExamples('fnbus namespace remove staging'))
    .action(removeNamespace);
}

function pairs(values: string[], what: string): StringMap | undefined {
  if (values.length === 0) return undefined;
  const map: StringMap = {};
  for (const value of values) {
    const at = value.indexOf('=');
    if (at <= 0) throw new ValidationError(`${what} "${value}" is not key=value`);
    map[value.slice(0, at)] = value.slice(at + 1);
  }
  return map;
}

async function listNamespaces(options: GatewayOptions): Promise<void> {
  const { openGateway } = await import('../open-gateway.js');
  const names = await openGateway(options).json<string[]>('/system/namespaces');
  print(names.map((name) => `${name}\n`).join(''));
}

async function getNamespace(name: string, options: GatewayOptions): Promise<void> {
  const { openGateway } = await import('../open-gateway.js');
  const found = await openGateway(options).json<FunctionNamespace>(
    `/system/namespace/${encodeURIComponent(name)}`,
  );
  print(`${JSON.stringify(found, null, 2)}\n`);
}

async function writeNamespace(
  verb: 'create' | 'update',
  name: string,
  options: NamespaceOptions,
): Promise<void> {
  const labels = pairs(options.label, 'label');
  const annotations = pairs(options.annotation, 'annotation');
  const body: FunctionNamespace = {
    name,
    ...(labels ? { labels } : {}),
    ...(annotations ? { annotations } : {}),
  };
  const { openGateway } = await import('../open-gateway.js');
  // faas-cli's SDK creates at /system/namespace/ with the name in the body.
  if (verb === 'create') await openGateway(options).system('POST', '/system/namespace/', body);
  else {
    await openGateway(options).system('PUT', `/system/namespace/${encodeURIComponent(name)}`, body);
  }
  print(`${verb === 'create' ? 'created' : 'updated'} namespace ${name}\n`);
}

async function removeNamespace(name: string, options: GatewayOptions): Promise<void> {
  const { openGateway } = await import('../open-gateway.js');
  await openGateway(options).system('DELETE', `/system/namespace/${encodeURIComponent(name)}`, {
    name,
  });
  print(`removed namespace ${name}\n`);
}
