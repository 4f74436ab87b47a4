import type { Command } from 'commander';
import type { GatewayClient, GatewayOptions } from '../../client/gateway-client.js';
import { FnbusError, ValidationError } from '../../core/errors.js';
import type { FunctionDeployment } from '../../core/function-types.js';
import { collect, gatewayOptions, keyValuePairs } from '../gateway-options.js';
import { helpExamples } from '../help-examples.js';
import { tagMode, tagModes } from '../image-tag.js';
import { print } from '../print.js';

interface DeployOptions extends GatewayOptions {
  yaml?: string;
  filter?: string;
  image?: string;
  name?: string;
  fprocess?: string;
  env: string[];
  label: string[];
  annotation: string[];
  secret: string[];
  namespace?: string;
  tag: string;
}

/** `fnbus deploy`: a stack file's functions, or one image, through a gateway (as faas-cli). */
export function registerDeployCommand(program: Command): void {
  gatewayOptions(
    program
      .command('deploy')
      .description(
        'deploy the functions of a stack file, or one image (--image, --name): PUT, then POST on 404',
      )
      .option('-f, --yaml <file>', 'the stack file (default: stack.yml, unless --image is given)')
      .option('--filter <name>', 'only the stack functions matching this name (* is a wildcard)')
      .option('--tag <mode>', `the stack's images as built: ${tagModes.join(', ')}`, 'latest')
      .option('--image <image>', 'deploy this image instead of a stack file')
      .option('--name <name>', 'the function name, with --image')
      .option('--fprocess <command>', 'the command the watchdog runs, with --image')
      .option('-e, --env <KEY=VALUE>', 'an environment variable (repeatable)', collect, [])
      .option('-l, --label <KEY=VALUE>', 'a label (repeatable)', collect, [])
      .option('--annotation <KEY=VALUE>', 'an annotation (repeatable)', collect, [])
      .option('--secret <name>', 'a secret to give the function (repeatable)', collect, [])
      .option('-n, --namespace <namespace>', 'the namespace, with --image'),
  )
    .addHelpText(
      'after',
      helpExamples(
        'fnbus deploy -f stack.yml',
        "fnbus deploy -f stack.yml --filter 'api-*'",
        'fnbus deploy -f stack.yml --tag sha   # the images fnbus build --tag sha made',
        "fnbus deploy --image ghcr.io/me/echo:1 --name echo --fprocess 'cat' -e mode=streaming",
      ),
    )
    .action(deploy);
}

async function deploy(options: DeployOptions): Promise<void> {
  const { openGateway } = await import('../open-gateway.js');
  if (options.image !== undefined) {
    if (options.yaml !== undefined) {
      throw new ValidationError('give either -f/--yaml or --image, not both');
    }
    if (!options.name) throw new ValidationError('--image needs --name');
    const deployment: FunctionDeployment = { service: options.name, image: options.image };
    if (options.namespace) deployment.namespace = options.namespace;
    if (options.fprocess) deployment.envProcess = options.fprocess;
    const envVars = keyValuePairs(options.env, '--env');
    if (envVars) deployment.envVars = envVars;
    const labels = keyValuePairs(options.label, '--label');
    if (labels) deployment.labels = labels;
    const annotations = keyValuePairs(options.annotation, '--annotation');
    if (annotations) deployment.annotations = annotations;
    if (options.secret.length > 0) deployment.secrets = [...options.secret];
    await deployOne(openGateway(options), deployment);
    print(`deployed ${options.name}\n`);
    return;
  }
  const tag = tagMode(options.tag);
  const singleOnly = (['name', 'fprocess', 'namespace'] as const).filter((k) => options[k]);
  if (singleOnly.length > 0) {
    throw new ValidationError(`--${singleOnly[0]} goes with --image, not with a stack file`);
  }
  const { loadStack } = await import('../stack.js');
  const { buildStackFunction, stackDeployment, stackFunctionNames } =
    await import('../stack-deployments.js');
  const { LocalImageStore, localImagesDir } =
    await import('../../deploy/process/local-image-store.js');
  const stack = loadStack(options.yaml ?? 'stack.yml', process.env);
  const names = stackFunctionNames(stack, options.filter);
  // Every deployment is built (and checked) before the first call.
  const deployments = names.map((name) => stackDeployment(name, stack, undefined, tag));
  const gateway = openGateway(options, stack.provider.gateway);
  // Built for this machine's hubs first, as `fnbus build` does; a hub elsewhere runs the image.
  const images = new LocalImageStore(localImagesDir(process.env));
  for (const [index, deployment] of deployments.entries()) {
    await buildStackFunction(
      deployment.service,
      stack,
      images,
      (line) => process.stderr.write(`${line}\n`),
      tag,
    );
    await deployOne(gateway, deployment);
    print(`deployed ${deployment.service} (${index + 1}/${deployments.length})\n`);
  }
}

/** faas-cli's update-or-create: PUT /system/functions, POST when the PUT says 404. */
async function deployOne(gateway: GatewayClient, deployment: FunctionDeployment): Promise<void> {
  try {
    await gateway.system('PUT', '/system/functions', deployment);
  } catch (error) {
    if (!(error instanceof FnbusError) || error.status !== 404) throw error;
    await gateway.system('POST', '/system/functions', deployment);
  }
}
