import type { Logger } from '../core/logger.js';

/**
 * Stops a long-running command on its first SIGINT or SIGTERM (or when the returned function is
 * called), then ends the process: 0 once `stop` resolved, 1 if it failed or the command had
 * failed before (`process.exitCode`). The exit is explicit: a library can keep a handle open past
 * its own close (kafkajs may keep a socket to a restarted broker until the broker drops it, 10
 * minutes on), and a stopped daemon must not wait for it.
 */
export function stopOnSignals(stop: () => Promise<void>, logger: Logger): (why: string) => void {
  let stopping = false;
  const shutdown = (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal: why }, 'stopping');
    stop().then(
      () => {
        logger.info('stopped');
        process.exit(process.exitCode ?? 0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  return shutdown;
}
