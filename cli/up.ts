import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../core/logger.js';
import { ProcessProvider } from '../deploy/process/process-provider.js';
import { buildGateway } from '../gateway/app.js';
import type { GatewayConfig } from '../gateway/config.js';
import { prepareStackFunction, stackDeployment } from './stack-deployments.js';
import { loadStack, type Stack } from './stack.js';

export interface UpOptions {
  stackFile: string | undefined;
  config: GatewayConfig;
  stateDir: string;
  logger: Logger;
}

export interface RunningHub {
  port: number;
  stop(): Promise<void>;
}

/** Where `fnbus up` keeps deployed functions between runs, unless told otherwise. */
export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'fnbus');
}

/**
 * `fnbus up`: the whole hub in one process (gateway + process provider), with the stack's
 * functions deployed (updated if they exist from an earlier run). Functions deployed through the
 * API in an earlier run come back too: the provider keeps them in its state folder.
 */
export async function up({ stackFile, config, stateDir, logger }: UpOptions): Promise<RunningHub> {
  const stack = stackFile ? loadStack(stackFile, process.env) : undefined;
  const provider = new ProcessProvider({ stateDir, namespace: config.functionNamespace, logger });
  await provider.start();
  // With basic_auth, credentials come from the files under secret_mount_path (as OpenFaaS), else
  // from FNBUS_USERNAME / FNBUS_PASSWORD: the same variables the client commands send.
  const { FNBUS_USERNAME: user, FNBUS_PASSWORD: password } = process.env;
  const credentials = user && password ? { user, password } : undefined;
  const gateway = buildGateway({ provider, config, credentials });
  try {
    await gateway.listen({ port: config.port, host: '0.0.0.0' });
    if (stack) await deployStack(stack, provider, config.functionNamespace, logger);
  } catch (error) {
    await gateway.close();
    await provider.close();
    throw error;
  }
  const address = gateway.server.address();
  return {
    port: typeof address === 'object' && address ? address.port : config.port,
    async stop() {
      await gateway.close();
      await provider.close();
    },
  };
}

async function deployStack(
  stack: Stack,
  provider: ProcessProvider,
  namespace: string,
  logger: Logger,
): Promise<void> {
  const names = Object.keys(stack.functions);
  for (const [index, name] of names.entries()) {
    const deployment = stackDeployment(name, stack, namespace);
    await prepareStackFunction(name, stack, (line) => logger.info({ function: name }, line));
    if (await provider.get(name, deployment.namespace)) await provider.update(deployment);
    else await provider.deploy(deployment);
    logger.info({ function: name, progress: `${index + 1}/${names.length}` }, 'deployed');
  }
}
