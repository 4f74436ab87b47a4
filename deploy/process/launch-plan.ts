import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { quote } from 'shell-quote';
import { ValidationError } from '../../core/errors.js';
import type { FunctionDeployment, StringMap } from '../../core/function-types.js';

/** Annotation keys that make a function a template handler run in place (an fnbus addition). */
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
 * can start), or a template handler named by the `fnbus.lang` and `fnbus.handler` annotations,
 * or an `fprocess`/`function_process`/static `mode` already in envVars. The image is only kept:
 * there is no container on this provider. Throws a ValidationError saying what is missing.
 */
export function planLaunch(spec: FunctionDeployment, repoRoot: string): LaunchPlan {
  const env: StringMap = { ...(spec.envVars ?? {}) };
  const lang = spec.annotations?.[FnbusAnnotation.Lang] ?? spec.labels?.[FnbusAnnotation.Lang];
  if (lang !== undefined) {
    const runner = runners[lang];
    if (!runner) {
      throw new ValidationError(
        `${FnbusAnnotation.Lang} "${lang}" is not a template here: use one of ${Object.keys(runners).join(', ')}`,
      );
    }
    const handler =
      spec.annotations?.[FnbusAnnotation.Handler] ?? spec.labels?.[FnbusAnnotation.Handler];
    if (!handler || !isAbsolute(handler)) {
      throw new ValidationError(
        `${FnbusAnnotation.Lang} needs ${FnbusAnnotation.Handler}: the absolute path of the handler's folder`,
      );
    }
    if (!existsSync(handler)) {
      // The path is not echoed: answers never show the machine's folders.
      throw new ValidationError(
        `${FnbusAnnotation.Handler}: no such file or folder on this machine`,
      );
    }
    env.fprocess = quote(runner(repoRoot));
    env.mode = 'http';
    env.handler_path = handler;
    return { env, needsUpstreamPort: true };
  }
  if (spec.envProcess) env.fprocess = spec.envProcess;
  // An http-mode function without its own upstream_url gets a port per replica (several replicas
  // share this host; a fixed port would collide), in PORT and upstream_url as for a template.
  const ownUpstream = env.upstream_url !== undefined || env.http_upstream_url !== undefined;
  const needsUpstreamPort = env.mode === 'http' && !ownUpstream;
  if (!env.fprocess && !env.function_process && env.mode !== 'static') {
    throw new ValidationError(
      spec.image
        ? `image "${spec.image}" cannot run on the process provider (no containers): give envProcess (fprocess) or the ${FnbusAnnotation.Lang} and ${FnbusAnnotation.Handler} annotations`
        : `nothing to run: give image and envProcess (fprocess), or the ${FnbusAnnotation.Lang} and ${FnbusAnnotation.Handler} annotations`,
    );
  }
  return { env, needsUpstreamPort };
}
