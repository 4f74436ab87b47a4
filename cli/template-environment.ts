import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { StringMap } from '../core/function-types.js';
import { templatesDir } from './new-function.js';

/** The environment maps of a template.yml: the watchdog's settings and the runner's own. */
interface TemplateYaml {
  watchdog?: Record<string, unknown>;
  environment?: Record<string, unknown>;
}

const cache = new Map<string, StringMap>();

/**
 * The environment a function of fnbus's template `lang` runs with, from its template.yml: the
 * `watchdog` map (mode, upstream_url, timeouts, prefix_logs), then the `environment` map (the
 * runner's settings; PYTHONUNBUFFERED for python3). OpenFaaS puts these in the template's
 * Dockerfile as ENV lines; fnbus puts them in the deployment's envVars, so that they travel with
 * it to whichever provider runs it. `${PORT}` is expanded with `PORT` as the function will have
 * it (`port`: its own environment's, else the template's): a provider that picks a port per
 * replica sets both again. Empty for a name that is not one of fnbus's templates.
 */
export function templateEnvironment(
  lang: string,
  port?: string,
  templates = templatesDir,
): StringMap {
  const key = `${templates}\0${lang}`;
  let env = cache.get(key);
  if (!env) {
    env = readTemplateEnvironment(join(templates, lang, 'template.yml'));
    cache.set(key, env);
  }
  const portValue = port ?? env.PORT ?? '3000';
  return Object.fromEntries(
    Object.entries(env).map(([name, value]) => [name, value.replaceAll('${PORT}', portValue)]),
  );
}

function readTemplateEnvironment(file: string): StringMap {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  const yaml = (parse(text) ?? {}) as TemplateYaml;
  const env: StringMap = {};
  for (const map of [yaml.watchdog, yaml.environment]) {
    for (const [name, value] of Object.entries(map ?? {})) {
      // Scalars only, as an ENV line holds: a nested map or list is no variable's value.
      if (typeof value === 'string') env[name] = value;
      else if (typeof value === 'number' || typeof value === 'boolean') env[name] = String(value);
    }
  }
  return env;
}
