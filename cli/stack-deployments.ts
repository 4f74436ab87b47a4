import type { FunctionDeployment } from '../core/function-types.js';
import { FnbusAnnotation } from '../deploy/process/launch-plan.js';
import { templateLanguages } from './new-function.js';
import type { Stack } from './stack.js';
import { toDeployment } from './to-deployment.js';
import { installDependencies } from './template-dependencies.js';

/**
 * The deployment of one stack function as fnbus runs it, shared by `fnbus up` (straight to the
 * provider) and `fnbus deploy -f` (through the gateway). A function written for a template runs
 * its handler in place through the process provider: the `fnbus.lang` and `fnbus.handler`
 * annotations name the template and the handler's absolute folder. `namespace`, when given,
 * fills in a function's missing namespace; otherwise that is left to the gateway.
 */
export function stackDeployment(
  name: string,
  stack: Stack,
  namespace?: string,
): FunctionDeployment {
  const fn = stack.functions[name];
  if (!fn) throw new Error(`no function "${name}" in the stack`);
  return withTemplate(toDeployment(name, fn, stack), fn.lang, fn.handlerPath, namespace);
}

/** Adds the template annotations when `lang` is one of fnbus's templates and a handler is set. */
export function withTemplate(
  deployment: FunctionDeployment,
  lang: string | undefined,
  handlerPath: string | undefined,
  namespace?: string,
): FunctionDeployment {
  const ns = deployment.namespace ?? namespace;
  const result = { ...deployment, ...(ns === undefined ? {} : { namespace: ns }) };
  if (!lang || !handlerPath || !templateLanguages().includes(lang)) return result;
  return {
    ...result,
    annotations: {
      ...result.annotations,
      [FnbusAnnotation.Lang]: lang,
      [FnbusAnnotation.Handler]: handlerPath,
    },
  };
}

/**
 * Readies a stack function to run from its handler folder: installs a template handler's
 * dependencies when it has some not installed yet (progress through `progress`). Nothing for a
 * function that is a plain command.
 */
export async function prepareStackFunction(
  name: string,
  stack: Stack,
  progress: (line: string) => void,
): Promise<void> {
  const fn = stack.functions[name];
  if (!fn?.lang || !fn.handlerPath || !templateLanguages().includes(fn.lang)) return;
  await installDependencies(name, fn.handlerPath, progress);
}
