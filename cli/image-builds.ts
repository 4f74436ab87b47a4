import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import type Docker from 'dockerode';
import { ImageError, ValidationError } from '../core/errors.js';
import { buildImage, ensureWatchdogImage, pushImage } from './docker-images.js';
import { templatesDir } from './new-function.js';
import { isImageFunction } from './stack-deployments.js';
import type { Stack, StackFunction } from './stack.js';
import { imageTag, type TagMode } from './image-tag.js';
import { watchdogImage } from './watchdog-runtime.js';

/** What is copied from a handler folder into a build context: never what was installed on this machine. */
const installedHere = new Set(['node_modules', '.python_packages', '__pycache__', 'build']);

/**
 * Writes a function's build context where faas-cli writes it, `build/<name>/` beside the stack
 * file: the template (its Dockerfile, runner and files) with the handler in `function/`, and the
 * stack's `configuration.copy` paths in `function/` too; for `lang: dockerfile`, the handler
 * folder as it is. Replaces what an earlier build left there; returns the folder.
 */
export function writeBuildContext(
  name: string,
  fn: StackFunction & { lang: string; handlerPath: string },
  stack: Stack,
): string {
  const context = join(stack.stackDir, 'build', name);
  rmSync(context, { recursive: true, force: true });
  const copyHandler = (to: string) =>
    cpSync(fn.handlerPath, to, {
      recursive: true,
      filter: (source) => !installedHere.has(relative(fn.handlerPath, source).split('/')[0] ?? ''),
    });
  if (fn.lang === 'dockerfile') {
    copyHandler(context);
    return context;
  }
  const template = join(templatesDir, fn.lang);
  cpSync(template, context, {
    recursive: true,
    filter: (source) => relative(template, source).split('/')[0] !== 'function',
  });
  const functionDir = join(context, 'function');
  mkdirSync(functionDir, { recursive: true });
  copyHandler(functionDir);
  for (const path of stack.configuration.copy) {
    cpSync(join(stack.stackDir, path), join(functionDir, path), { recursive: true });
  }
  return context;
}

export interface ImageBuildOptions {
  /** How many functions build at once (faas-cli's `--parallel`, default 1). */
  parallel: number;
  tag: TagMode;
  /** `--build-arg K=V`, over the stack's `build_args`. */
  buildArgs: Record<string, string>;
  progress: (line: string) => void;
}

/**
 * Builds the images of the named stack functions (those that have one), `parallel` at a time;
 * the watchdog image first, once. Returns a line per function saying what became of it. The
 * first failure ends the run once the builds under way are done; its error says which function.
 */
export async function buildStackImages(
  docker: Docker,
  stack: Stack,
  names: string[],
  options: ImageBuildOptions,
): Promise<string[]> {
  // Template Dockerfiles copy the watchdog from it, and so may a function's own (`dockerfile`).
  if (names.some((name) => isImageFunction(stack.functions[name]))) {
    await ensureWatchdogImage(docker, options.progress);
  }
  return eachInTurn(names, options.parallel, async (name) => {
    const fn = stack.functions[name];
    if (!isImageFunction(fn)) return `${name}: no image to build (not a template function)`;
    const tag = imageTag(fn.image, options.tag, stack.stackDir);
    const context = writeBuildContext(name, fn, stack);
    const startedAt = Date.now();
    await buildImage(docker, {
      context,
      tag,
      buildArgs: { WATCHDOG_IMAGE: watchdogImage, ...fn.buildArgs, ...options.buildArgs },
      progress: (line) => options.progress(`[${name}] ${line}`),
    }).catch((error: unknown) => {
      throw error instanceof ImageError ? new ImageError(`${name}: ${error.message}`) : error;
    });
    return `built ${name} as ${tag} in ${((Date.now() - startedAt) / 1000).toFixed(1)}s`;
  });
}

/** Pushes the images of the named stack functions, `parallel` at a time, as built with `tag`. */
export async function pushStackImages(
  docker: Docker,
  stack: Stack,
  names: string[],
  options: Omit<ImageBuildOptions, 'buildArgs'>,
): Promise<string[]> {
  return eachInTurn(names, options.parallel, async (name) => {
    const fn = stack.functions[name];
    if (!isImageFunction(fn)) return `${name}: no image to push (not a template function)`;
    const tag = imageTag(fn.image, options.tag, stack.stackDir);
    await pushImage(docker, tag, (line) => options.progress(`[${name}] ${line}`)).catch(
      (error: unknown) => {
        throw error instanceof ImageError ? new ImageError(`${name}: ${error.message}`) : error;
      },
    );
    return `pushed ${name} as ${tag}`;
  });
}

/** Runs `work` over `items`, at most `parallel` at once; results in `items`' order. */
async function eachInTurn<T>(
  items: string[],
  parallel: number,
  work: (item: string) => Promise<T>,
): Promise<T[]> {
  const results: T[] = new Array<T>(items.length);
  let next = 0;
  let failure: Error | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await work(items[index] as string);
      } catch (error) {
        failure ??= error instanceof Error ? error : new Error(String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  if (failure !== undefined) throw failure;
  return results;
}

/** Whether the handler folder exists: a stack naming a missing one fails before any build. */
export function checkHandlers(stack: Stack, names: string[]): void {
  for (const name of names) {
    const fn = stack.functions[name];
    if (isImageFunction(fn) && !existsSync(fn.handlerPath)) {
      throw new ValidationError(`${name}: its handler folder ${fn.handler ?? ''} does not exist`);
    }
  }
}

/**
 * `fnbus up -f` on a container provider, as `faas-cli up`: builds every image of the stack, then
 * pushes them (unless `push` is false: a cluster that sees this engine's images), tagged as
 * `tag` makes them (faas-cli's `--tag`), through the
 * Docker engine of DOCKER_HOST. Each function's result is logged through `log`.
 */
export async function buildAndPushStack(
  stack: Stack,
  { push, tag }: { push: boolean; tag: TagMode },
  log: (line: string) => void,
): Promise<void> {
  const names = Object.keys(stack.functions).filter((name) =>
    isImageFunction(stack.functions[name]),
  );
  if (names.length === 0) return;
  const { openDocker } = await import('./docker-images.js');
  const docker = await openDocker();
  const options = { parallel: 1, tag, buildArgs: {}, progress: () => undefined };
  for (const line of await buildStackImages(docker, stack, names, options)) log(line);
  if (push) for (const line of await pushStackImages(docker, stack, names, options)) log(line);
}
