#!/usr/bin/env node
import { ConfigError } from '../core/errors.js';
import { readConfig, unsupportedVariables } from './config.js';
import { createJsonLogger } from './json-logger.js';
import { lockFile } from './lock-file.js';
import { Watchdog } from './watchdog.js';
import { version } from './version.js';

const usage = `fnbus-watchdog ${version}: runs a process as an OpenFaaS-compatible function.

Configured by environment, as OpenFaaS's watchdogs are (see watchdog/README.md), e.g.
  fprocess=sha512sum fnbus-watchdog
  mode=http fprocess="node server.js" upstream_url=http://127.0.0.1:3000 fnbus-watchdog

Options:
  --run-healthcheck  exit 0 if the lock file is present (a ready watchdog), 1 if not
  --version          print the version
  --help             print this help
`;

const arg = process.argv[2];
if (arg === '--help' || arg === '-h') {
  process.stdout.write(usage);
  process.exit(0);
}
if (arg === '--version') {
  process.stdout.write(`${version}\n`);
  process.exit(0);
}
if (arg === '--run-healthcheck') {
  process.exit(lockFile.exists() ? 0 : 1);
}
if (arg !== undefined) {
  process.stderr.write(`fnbus-watchdog: unknown argument "${arg}"\n\n${usage}`);
  process.exit(2);
}

const logger = createJsonLogger('fnbus-watchdog', (line) => process.stderr.write(line));

let config;
try {
  config = readConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`fnbus-watchdog: ${error.message}\n`);
  process.exit(1);
}
for (const [name, why] of Object.entries(unsupportedVariables)) {
  if (process.env[name]) logger.warn({ variable: name }, `${name} is not supported: ${why}`);
}

const watchdog = new Watchdog(config, {
  logger,
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
});

const starting = new AbortController();
let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  starting.abort();
  logger.info({ signal, inFlight: watchdog.inFlight }, 'stopping: draining calls in flight');
  watchdog.stop().then(
    () => {
      logger.info('stopped');
      process.exit(0);
    },
    (error: unknown) => {
      logger.error({ err: error }, 'error while stopping');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

try {
  const { port, metricsPort } = await watchdog.start(starting.signal);
  logger.info(
    { mode: config.mode, port, metricsPort, command: config.command.join(' ') || undefined },
    'watchdog ready',
  );
} catch (error) {
  if (!stopping) {
    logger.error({ err: error }, 'cannot start');
    process.exit(1);
  }
}
