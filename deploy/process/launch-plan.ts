import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { quote } from 'shell-quote';
import { ValidationError } from '../../core/errors.js';
import type { FunctionDeployment, StringMap } from '../../core/function-types.js';
import type { LocalImageStore } from './local-image-store.js';

/**
 * Annotation keys that make a function a template handler run in place, kept for functions saved
 * by older hubs: a stack's template functions are found by image name now (LocalImageStore).
 */
export const FnbusAnnotation = {
  /** The template: `node`, `python3` or `alexa`. */
  Lang: 'fnbus.lang',
  /** The handler's folder (or file), an absolute path on this machine. */
  Handler: 'fnbus.handler',
} as const;

/** A node template's runner, run by this node. */
const nodeRunner = (template: string) => (root: string) => [
  process.execPath,
  join(root, 'templates', template, 'index.js'),
];

const runners: Record<string, (repoRoot: string) => string[]> = {
  node: nodeRunner('node'),
  alexa: nodeRunner('alexa'),
  python3: (root) => ['python3', join(root, 'templates', 'python3', 'index.py')],
};

/** How to start one replica's watchdog, short of the per-replica settings (ports, TMPDIR). */
export interface LaunchPlan {
  /** The function's environment for the watchdog: envVars plus fprocess (and mode for templates). */
  env: StringMap;
  /** A template runner, or http mode without upstream_url: each replica picks a port for it and sets `PORT` and `upstream_url`. */
  needsUpstreamPort: boolean;
}

/**
 * What runs for a deployment: `envProcess` (the `fprocess` of OpenFaaS; any command the watchdog
 * can start), or an `fprocess`/`function_process`/static `mode` already in envVars, or else the
 * image as `fnbus build` recorded it on this machine (a template runner in front of a handler);
 * older functions may name the template and handler with the `fnbus.lang` and `fnbus.handler`
 * annotations. There is no container on this provider. Throws a ValidationError saying what is
 * missing, never where on the machine.
 */
export function planLaunch(
  spec: FunctionDeployment,
  repoRoot: string,
  images?: LocalImageStore,
): LaunchPlan {
  const env: StringMap = { ...(spec.envVars ?? {}) };
  const lang = spec.annotations?.[FnbusAnnotation.Lang] ?? spec.labels?.[FnbusAnnotation.Lang];
  if (lang !== undefined) {
    const handler =
      spec.annotations?.[FnbusAnnotation.Handler] ?? spec.labels?.[FnbusAnnotation.Handler];
    if (!handler || !isAbsolute(handler)) {
      throw new ValidationError(
        `${FnbusAnnotation.Lang} needs ${FnbusAnnotation.Handler}: the absolute path of the handler's folder`,
      );
    }
    return templatePlan(env, lang, handler, repoRoot, FnbusAnnotation.Handler);
  }
  const built = spec.image ? images?.find(spec.image) : undefined;
  // faas-cli sends the template's own fprocess for a template function: its runner, built here.
  const ownCommand =
    (spec.envProcess && spec.envProcess !== built?.fprocess) ||
    env.fprocess ||
    env.function_process ||
    env.mode === 'static';
  if (built && !ownCommand) {
    return templatePlan(env, built.lang, built.handler, repoRoot, `image "${spec.image}"`);
  }
  if (spec.envProcess) env.fprocess = spec.envProcess;
  if (env.fprocess || env.function_process || env.mode === 'static') {
    // An http-mode function without its own upstream_url gets a port per replica (several
    // replicas share this host; a fixed port would collide), in PORT and upstream_url.
    const ownUpstream = env.upstream_url !== undefined || env.http_upstream_url !== undefined;
    return { env, needsUpstreamPort: env.mode === 'http' && !ownUpstream };
  }
  throw new ValidationError(
    spec.image
      ? `image "${spec.image}" is not built on this machine (fnbus build) and there is no container here: build it, or give envProcess (fprocess)`
      : 'nothing to run: give image and envProcess (fprocess), or an image built with fnbus build',
  );
}

/** A template's runner in http mode in front of `handler`, on a port of each replica's own. */
function templatePlan(
  env: StringMap,
  lang: string,
  handler: string,
  repoRoot: string,
  what: string,
): LaunchPlan {
  const runner = runners[lang];
  if (!runner) {
    throw new ValidationError(
      `${what}: "${lang}" is not a template here: use one of ${Object.keys(runners).join(', ')}`,
    );
  }
  if (!existsSync(handler)) {
    // The path is not echoed: answers never show the machine's folders.
    throw new ValidationError(`${what}: its handler is no longer on this machine`);
  }
  env.fprocess = quote(runner(repoRoot));
  env.mode = 'http';
  env.handler_path = handler;
  return { env, needsUpstreamPort: true };
}
