import type { Logger } from '../core/logger.js';
import { SpawnHelper } from './spawn-helper.js';
import { ChildProcessLauncher, type ProcessLauncher } from './spawner.js';

/**
 * The fastest way this installation can start a function process per call: fnbus-spawner when
 * it was built and starts, else node's child_process (correct, slower), said once in the log.
 */
export async function createLauncher(
  command: readonly string[],
  env: NodeJS.ProcessEnv,
  useHelper: boolean,
  logger: Logger,
  cwd?: string,
): Promise<ProcessLauncher> {
  if (useHelper) {
    if (SpawnHelper.available()) {
      const helper = new SpawnHelper(command, env, logger, cwd);
      if (await helper.ready) return helper;
      helper.close();
      logger.warn('fnbus-spawner did not start; forking with child_process instead');
    } else {
      logger.warn(
        'fnbus-spawner is not built (no C compiler at install?); forking with child_process',
      );
    }
  }
  return new ChildProcessLauncher(command, env, cwd);
}
