import type { Command } from 'commander';
import { ValidationError } from '../core/errors.js';
import { listFunctions } from '../connectors/sdk/map-builder.js';
import { TopicMap } from '../connectors/sdk/topic-map.js';
import {
  exactTopics,
  mqttTopics,
  natsTopics,
  type TopicMatcher,
} from '../connectors/sdk/topic-matchers.js';
import type { GatewayOptions } from '../client/gateway-client.js';
import { client, gatewayOptions, print, table } from './client-commands.js';

const syntaxes: Record<string, TopicMatcher> = {
  exact: exactTopics,
  mqtt: mqttTopics,
  nats: natsTopics,
};

interface TopicsOptions extends GatewayOptions {
  match?: string;
  syntax: string;
  delimiter: string;
}

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
  ).action(async (options: TopicsOptions) => {
    const matcher = syntaxes[options.syntax];
    if (!matcher) {
      throw new ValidationError(`--syntax "${options.syntax}": choose exact, mqtt or nats`);
    }
    const functions = await listFunctions(client(options));
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
