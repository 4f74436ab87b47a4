#!/usr/bin/env node
import { Command } from 'commander';
import { version } from '../watchdog/version.js';
import { registerBuildCommand } from './commands/build.js';
import { registerPushCommand } from './commands/push.js';
import { registerCallCommand } from './commands/call.js';
import { registerCancelCommand } from './commands/cancel.js';
import { registerConnectorCommand } from './commands/connector.js';
import { registerDeployCommand } from './commands/deploy.js';
import { registerDescribeCommand } from './commands/describe.js';
import { registerDlqCommand } from './commands/dlq.js';
import { registerGatewayCommand } from './commands/gateway.js';
import { registerInvokeCommand } from './commands/invoke.js';
import { registerListCommand } from './commands/list.js';
import { registerLoginCommand } from './commands/login.js';
import { registerLogoutCommand } from './commands/logout.js';
import { registerLogsCommand } from './commands/logs.js';
import { registerNamespaceCommand } from './commands/namespace.js';
import { registerNewCommand } from './commands/new.js';
import { registerTemplateCommand } from './commands/template.js';
import { registerQueueWorkerCommand } from './commands/queue-worker.js';
import { registerRemoveCommand } from './commands/remove.js';
import { registerScaleCommand } from './commands/scale.js';
import { registerSecretCommand } from './commands/secret.js';
import { registerTopicsCommand } from './commands/topics.js';
import { registerUpCommand } from './commands/up.js';
import { registerVersionCommand } from './commands/version.js';
import { helpExamples } from './help-examples.js';
import { runCli } from './run-cli.js';

/**
 * The `fnbus` command: registration only. Each command lives in cli/commands/<name>.ts and loads
 * what it runs when it runs, so `fnbus version` does not load the hub. The watchdog has its own
 * binary, `fnbus-watchdog`, since it runs inside every function.
 */
const program = new Command()
  .name('fnbus')
  .description('fnbus: an event-connector hub for serverless functions, compatible with OpenFaaS')
  .version(version, '-v, --version', 'print the version')
  // Options after a subcommand are the subcommand's: `fnbus list -v` is verbose, not --version.
  .enablePositionalOptions()
  .addHelpText(
    'after',
    helpExamples(
      'fnbus up -f stack.yml                      # the hub, on 127.0.0.1:8080',
      'cat ~/.local/state/fnbus/auth/basic-auth-password | fnbus login --password-stdin',
      'fnbus deploy -f stack.yml && echo hi | fnbus invoke hello',
      'fnbus <command> --help                     # each command, with examples',
    ) + '\nSettings: every variable is listed in cli/README.md (Configuration).\n',
  );

// The services.
registerUpCommand(program);
registerQueueWorkerCommand(program);
registerConnectorCommand(program);
// The client commands, which talk to a gateway.
registerNewCommand(program);
registerTemplateCommand(program);
registerBuildCommand(program);
registerPushCommand(program);
registerDeployCommand(program);
registerListCommand(program);
registerDescribeCommand(program);
registerInvokeCommand(program);
registerRemoveCommand(program);
registerScaleCommand(program);
registerLogsCommand(program);
registerSecretCommand(program);
registerVersionCommand(program);
registerCallCommand(program);
registerCancelCommand(program);
registerDlqCommand(program);
registerTopicsCommand(program);
registerLoginCommand(program);
registerLogoutCommand(program);
registerGatewayCommand(program);
registerNamespaceCommand(program);

await runCli(program, process.argv);
