import type { Command } from 'commander';
import type { GatewayOptions } from '../../client/gateway-client.js';
import { ValidationError } from '../../core/errors.js';
import { gatewayOptions } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { print, table } from '../print.js';

interface TopicsOptions extends GatewayOptions {
  match?: string;
  syntax: string;
  delimiter: string;
}

const syntaxNames = ['exact', 'mqtt', 'nats'];

/**
 * `fnbus topics`: the topic map a connector would build from a gateway (fnbus's or OpenFaaS's),
 * without sending anything: each topic and the functions it reaches, or with `--match TOPIC`,
 * the functions one event on TOPIC would invoke under a source's wildcard syntax.
 */
export function registerTopicsCommand(program: Command): void {
  gatewayOptions(
    program
      .command('topics')
      .description('show which functions each topic reaches (a dry run of the connectors’ map)')
      .option('--match <topic>', 'the functions an event on this topic would invoke')
      .option('--syntax <syntax>', 'wildcards in topic annotations: exact, mqtt or nats', 'exact')
      .option('--delimiter <text>', 'splits a topic annotation into topics', ','),
  )
    .addHelpText(
      'after',
      helpExamples('fnbus topics', "fnbus topics --syntax mqtt --match 'sensors/kitchen/temp'"),
    )
    .action(async (options: TopicsOptions) => {
      if (!syntaxNames.includes(options.syntax)) {
        throw new ValidationError(`--syntax "${options.syntax}": choose exact, mqtt or nats`);
      }
      const { listFunctions } = await import('../../connectors/sdk/map-builder.js');
      const { TopicMap } = await import('../../connectors/sdk/topic-map.js');
      const { exactTopics, mqttTopics, natsTopics } =
        await import('../../connectors/sdk/topic-matchers.js');
      const { openGateway } = await import('../open-gateway.js');
      const matcher = { exact: exactTopics, mqtt: mqttTopics, nats: natsTopics }[
        options.syntax as 'exact' | 'mqtt' | 'nats'
      ];
      const functions = await listFunctions(openGateway(options));
      const map = TopicMap.fromFunctions(functions, { matcher, delimiter: options.delimiter });
      if (options.match !== undefined) {
        for (const target of map.match(options.match)) print(`${target.function}\n`);
        return;
      }
      const rows = map
        .entries()
        .map(([topic, targets]) => [topic, targets.map((target) => target.function).join(', ')]);
      print(table([['TOPIC', 'FUNCTIONS'], ...rows]));
    });
}
