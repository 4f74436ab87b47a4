import type { FunctionDeployment } from '../core/function-types.js';
import type { Stack, StackFunction } from './stack.js';
import { StackError } from './stack-error.js';

/**
 * The body faas-cli's `deploy` sends for one stack function (faas-cli `commands/deploy.go`,
 * `proxy/deploy.go`). envVars: the inline `environment` overlaid by the environment files, since
 * faas-cli merges `mergeMap(function.Environment, fileEnvironment)` and the file values win.
 * Limits and requests are left out when empty. Unlike faas-cli, an empty `fprocess` is not
 * looked up in the template's template.yml here: that is the build's business.
 */
export function toDeployment(name: string, fn: StackFunction, stack: Stack): FunctionDeployment {
  if (!fn.image) {
    throw new StackError(
      { file: stack.file, field: `functions.${name}.image`, line: fn.line },
      'missing: a function needs an image to be deployed',
    );
  }
  const deployment: FunctionDeployment = { service: name, image: fn.image };
  if (fn.namespace) deployment.namespace = fn.namespace;
  if (fn.fprocess) deployment.envProcess = fn.fprocess;
  const envVars = { ...fn.environment, ...fn.environmentFromFiles };
  if (Object.keys(envVars).length > 0) deployment.envVars = envVars;
  if (fn.constraints && fn.constraints.length > 0) deployment.constraints = [...fn.constraints];
  if (fn.secrets.length > 0) deployment.secrets = [...fn.secrets];
  if (fn.labels) deployment.labels = { ...fn.labels };
  if (fn.annotations) deployment.annotations = { ...fn.annotations };
  if (fn.limits) deployment.limits = { ...fn.limits };
  if (fn.requests) deployment.requests = { ...fn.requests };
  deployment.readOnlyRootFilesystem = fn.readOnlyRootFilesystem;
  return deployment;
}
