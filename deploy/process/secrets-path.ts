import type { StringMap } from '../../core/function-types.js';

/** Where OpenFaaS functions read their secrets: each one a file, `/var/openfaas/secrets/<name>`. */
export const openfaasSecretsPath = '/var/openfaas/secrets';

/** OpenFaaS's folder as a whole path segment: followed by `/`, a quote, a space or the end. */
const openfaasFolder = /\/var\/openfaas\/secrets(?=[/'"\s]|$)/g;
/** A folder that can stand in a command line unquoted, as the watchdog splits it. */
const plainPath = /^\/[\w./-]*$/;

/**
 * The function's command (`fprocess`, `function_process`) with OpenFaaS's secrets folder read as
 * the function's own. This provider runs without root and cannot write `/var/openfaas/secrets`
 * (nor mount a folder there), so a command written for OpenFaaS (`cat
 * /var/openfaas/secrets/api-key`) is given the folder where its secrets are (FNBUS_SECRETS_PATH)
 * instead: the command line's equivalent of the mount. Programs that open the path themselves
 * read FNBUS_SECRETS_PATH (the templates' context.secret does). Left as it is when `dir` would
 * need quoting.
 */
export function withSecretsPath(env: StringMap, dir: string): StringMap {
  if (!plainPath.test(dir)) return env;
  const out = { ...env };
  for (const name of ['fprocess', 'function_process'] as const) {
    const command = out[name];
    if (command !== undefined) out[name] = command.replace(openfaasFolder, dir);
  }
  return out;
}
