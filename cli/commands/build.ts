import type { Command } from 'commander';
import { ValidationError } from '../../core/errors.js';
import { collect, keyValuePairs } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { tagMode, tagModes } from '../image-tag.js';
import { print } from '../print.js';

interface BuildOptions {
  yaml: string;
  filter?: string;
  parallel: string;
  buildArg: string[];
  tag: string;
  shrinkwrap?: boolean;
  image: boolean;
}

/**
 * `fnbus build`: a stack's template functions made runnable by this machine's hubs (recorded in
 * the local image store under their image names: deploy/process/local-image-store.ts), and built
 * as container images, as faas-cli build makes them, when a Docker engine answers (DOCKER_HOST,
 * else the local socket). `--shrinkwrap` only writes the build contexts (build/<fn>/).
 */
export function registerBuildCommand(program: Command): void {
  program
    .command('build')
    .description(
      "build a stack's functions: for this machine's hubs, and as container images when a Docker engine answers",
    )
    .option('-f, --yaml <file>', 'the stack file', 'stack.yml')
    .option('--filter <name>', 'only the stack functions matching this name (* is a wildcard)')
    .option('--parallel <n>', 'how many images build at once', '1')
    .option('-b, --build-arg <KEY=VALUE>', 'a Docker build argument (repeatable)', collect, [])
    .option('--tag <mode>', `the image tag: ${tagModes.join(', ')} (from git)`, 'latest')
    .option('--shrinkwrap', 'only write the build contexts to build/<function>/')
    .option('--no-image', 'no container image: only for this machine’s hubs')
    .addHelpText(
      'after',
      helpExamples(
        'fnbus build -f stack.yml',
        "fnbus build -f stack.yml --filter 'hello-*' --parallel 2",
        'fnbus build -f stack.yml --build-arg BASE_IMAGE=node:22-slim --tag sha',
      ),
    )
    .action(build);
}

async function build(options: BuildOptions): Promise<void> {
  const parallel = positive(options.parallel, '--parallel');
  const tag = tagMode(options.tag);
  const buildArgs = keyValuePairs(options.buildArg, '--build-arg') ?? {};
  const { loadStack } = await import('../stack.js');
  const { buildStackFunction, builtImage, isImageFunction, stackFunctionNames } =
    await import('../stack-deployments.js');
  const { checkHandlers, buildStackImages, writeBuildContext } = await import('../image-builds.js');
  const stack = loadStack(options.yaml, process.env);
  const names = stackFunctionNames(stack, options.filter);
  checkHandlers(stack, names);
  const progress = (line: string) => process.stderr.write(`${line}\n`);

  if (options.shrinkwrap) {
    for (const name of names) {
      const fn = stack.functions[name];
      if (isImageFunction(fn)) {
        print(`wrote ${name}'s build context to ${writeBuildContext(name, fn, stack)}\n`);
      } else {
        print(`${name}: no image to build (not a template function)\n`);
      }
    }
    return;
  }

  const { LocalImageStore, localImagesDir } =
    await import('../../deploy/process/local-image-store.js');
  const images = new LocalImageStore(localImagesDir(process.env));
  for (const name of names) await buildStackFunction(name, stack, images, progress, tag);

  const docker = options.image ? await dockerIfAny() : undefined;
  if (!docker) {
    if (options.image) {
      progress(
        'no Docker engine (DOCKER_HOST unset, no /var/run/docker.sock): built for this machine’s hubs only, no container images',
      );
    }
    for (const name of names) {
      const fn = stack.functions[name];
      print(
        isImageFunction(fn)
          ? `built ${name} as ${builtImage(fn.image, tag, stack)}\n`
          : `${name}: nothing to build (not a template function)\n`,
      );
    }
    return;
  }
  const lines = await buildStackImages(docker, stack, names, {
    parallel,
    tag,
    buildArgs,
    progress,
  });
  print(lines.map((line) => `${line}\n`).join(''));
}

/**
 * The Docker engine to build with: DOCKER_HOST's, which must answer when set; else the local
 * socket's, when there is one; else none (the build is for this machine's hubs only).
 */
async function dockerIfAny() {
  const { existsSync } = await import('node:fs');
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return undefined;
  const { openDocker } = await import('../docker-images.js');
  return openDocker();
}

/** A whole number of at least 1, for `flag`. */
export function positive(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new ValidationError(`${flag} takes a whole number of at least 1, not "${value}"`);
  }
  return n;
}
