import type { Command } from 'commander';
import { helpExamples } from '../help-examples.js';
import { tagMode, tagModes } from '../image-tag.js';
import { print } from '../print.js';
import { positive } from './build.js';

/**
 * `fnbus push`: pushes the images `fnbus build` made of a stack's functions to their registries,
 * through the Docker engine (DOCKER_HOST), with the logins `docker login` saved, as faas-cli push.
 */
export function registerPushCommand(program: Command): void {
  program
    .command('push')
    .description("push a stack's function images to their registries (after fnbus build)")
    .option('-f, --yaml <file>', 'the stack file', 'stack.yml')
    .option('--filter <name>', 'only the stack functions matching this name (* is a wildcard)')
    .option('--parallel <n>', 'how many images push at once', '1')
    .option('--tag <mode>', `the image tag, as built: ${tagModes.join(', ')}`, 'latest')
    .addHelpText(
      'after',
      helpExamples('fnbus push -f stack.yml', "fnbus push -f stack.yml --filter 'hello-*'"),
    )
    .action(async (options: { yaml: string; filter?: string; parallel: string; tag: string }) => {
      const parallel = positive(options.parallel, '--parallel');
      const tag = tagMode(options.tag);
      const { loadStack } = await import('../stack.js');
      const { stackFunctionNames } = await import('../stack-deployments.js');
      const { pushStackImages } = await import('../image-builds.js');
      const { openDocker } = await import('../docker-images.js');
      const stack = loadStack(options.yaml, process.env);
      const names = stackFunctionNames(stack, options.filter);
      const docker = await openDocker();
      const lines = await pushStackImages(docker, stack, names, {
        parallel,
        tag,
        progress: (line) => process.stderr.write(`${line}\n`),
      });
      print(lines.map((line) => `${line}\n`).join(''));
    });
}
