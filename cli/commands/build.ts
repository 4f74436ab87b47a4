import type { Command } from 'commander';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

/**
 * `fnbus build`: makes a stack's template functions runnable by this machine's hubs, recorded in
 * the local image store under their image names (deploy/process/local-image-store.ts), as faas-cli
 * build makes a container image. `fnbus up -f` and `fnbus deploy -f` build too.
 */
export function registerBuildCommand(program: Command): void {
  program
    .command('build')
    .description(
      "build a stack's template functions for this machine's hubs: dependencies installed, recorded by image name",
    )
    .option('-f, --yaml <file>', 'the stack file', 'stack.yml')
    .option('--filter <name>', 'only the stack functions matching this name (* is a wildcard)')
    .addHelpText(
      'after',
      helpExamples('fnbus build -f stack.yml', "fnbus build -f stack.yml --filter 'hello-*'"),
    )
    .action(async (options: { yaml: string; filter?: string }) => {
      const { buildStack } = await import('../stack-deployments.js');
      const built = await buildStack(options.yaml, options.filter, (line) =>
        process.stderr.write(`${line}\n`),
      );
      print(built.map((line) => `${line}\n`).join(''));
    });
}
