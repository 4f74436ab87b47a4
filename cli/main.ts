#!/usr/bin/env node
import { Command } from 'commander';
import { version } from '../watchdog/version.js';

/**
 * The `fnbus` command. Every fnbus service is one of its subcommands; they arrive with the
 * issues that build them (`up`, `deploy`, `invoke`, ...). The watchdog has its own binary,
 * `fnbus-watchdog`, since it runs inside every function.
 */
const program = new Command()
  .name('fnbus')
  .description('fnbus: an event-connector hub for serverless functions, compatible with OpenFaaS')
  .version(version, '-v, --version', 'print the version')
  .showHelpAfterError();

program
  .command('version')
  .description('print the version')
  .action(() => {
    process.stdout.write(`${version}\n`);
  });

await program.parseAsync(process.argv);
