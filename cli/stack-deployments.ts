import { ValidationError } from '../core/errors.js';
import type { FunctionDeployment } from '../core/function-types.js';
import type { LocalImageStore } from '../deploy/process/local-image-store.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { templateLanguages, templatesDir } from './new-function.js';
import { imageTag, type TagMode } from './image-tag.js';
import { templateEnvironment } from './template-environment.js';
import type { Stack, StackFunction } from './stack.js';
import { toDeployment } from './to-deployment.js';
import { installDependencies } from './template-dependencies.js';

/**
 * The deployment of one stack function, shared by `fnbus up` (straight to the provider) and
 * `fnbus deploy -f` (through a gateway): what the stack says (image, environment, labels,
 * annotations, ...) and nothing of this machine, so any provider anywhere can run it. A template
 * function is its image: the process provider finds what `fnbus build` made of it by that name
 * (buildStackFunction). `namespace`, when given, fills in a function's missing namespace;
 * otherwise that is left to the gateway. `tag`: the image as `fnbus build --tag` made it.
 */
export function stackDeployment(
  name: string,
  stack: Stack,
  namespace?: string,
  tag: TagMode = 'latest',
): FunctionDeployment {
  const fn = stack.functions[name];
  if (!fn) throw new Error(`no function "${name}" in the stack`);
  const deployment = toDeployment(name, fn, stack);
  if (isImageFunction(fn)) deployment.image = builtImage(fn.image, tag, stack);
  // The template's environment first, the function's own overriding it (as its Dockerfile's ENV
  // lines are overridden in OpenFaaS): it travels with the deployment to any provider.
  if (fn.lang && templateLanguages().includes(fn.lang)) {
    const own = deployment.envVars ?? {};
    deployment.envVars = { ...templateEnvironment(fn.lang, own.PORT), ...own };
  }
  const ns = deployment.namespace ?? namespace;
  return { ...deployment, ...(ns === undefined ? {} : { namespace: ns }) };
}

/** The image a stack function is built as: its `image`, with the tag `--tag` makes (faas-cli's). */
export function builtImage(image: string, tag: TagMode, stack: Stack): string {
  return tag === 'latest' ? image : imageTag(image, tag, stack.stackDir);
}

/** A stack function that has an image to build: a template one, or `lang: dockerfile`. */
export function isImageFunction(fn: StackFunction | undefined): fn is StackFunction & {
  lang: string;
  handlerPath: string;
  image: string;
} {
  return (
    !!fn?.lang &&
    !!fn.handlerPath &&
    !!fn.image &&
    !fn.skipBuild &&
    (fn.lang === 'dockerfile' || templateLanguages().includes(fn.lang))
  );
}

/** A function written for one of fnbus's templates, with a handler folder and to be built. */
function isTemplateFunction(fn: StackFunction | undefined): fn is StackFunction & {
  lang: string;
  handlerPath: string;
  image: string;
} {
  return isImageFunction(fn) && fn.lang !== 'dockerfile';
}

/**
 * `fnbus build` of one stack function for this machine's hubs: a template handler's dependencies
 * installed when it has some not installed yet (progress through `progress`), and the function
 * recorded in the local image store under its image name. Nothing for a function that is a plain
 * command, or that says skip_build.
 */
export async function buildStackFunction(
  name: string,
  stack: Stack,
  images: LocalImageStore,
  progress: (line: string) => void,
  tag: TagMode = 'latest',
): Promise<boolean> {
  const fn = stack.functions[name];
  if (!isTemplateFunction(fn)) return false;
  await installDependencies(name, fn.handlerPath, progress);
  images.save(builtImage(fn.image, tag, stack), {
    lang: fn.lang,
    handler: fn.handlerPath,
    fprocess: templateFprocess(fn.lang),
  });
  return true;
}

/** The template's own command (its template.yml `fprocess`), as faas-cli reads it. */
function templateFprocess(lang: string): string | undefined {
  const text = readFileSync(join(templatesDir, lang, 'template.yml'), 'utf8');
  const fprocess = (parse(text) as { fprocess?: unknown } | null)?.fprocess;
  return typeof fprocess === 'string' ? fprocess : undefined;
}

/** The stack's function names, or those matching `filter` (`*` a wildcard); none is an error. */
export function stackFunctionNames(stack: Stack, filter: string | undefined): string[] {
  const names = Object.keys(stack.functions);
  if (filter === undefined) return names;
  const escaped = filter.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  const pattern = new RegExp(`^${escaped}$`);
  const matching = names.filter((name) => pattern.test(name));
  if (matching.length === 0) {
    throw new ValidationError(`no function in ${stack.file ?? 'the stack'} matches "${filter}"`);
  }
  return matching;
}
