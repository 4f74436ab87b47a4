import type { Command } from 'commander';
import { FnbusError, listenError } from '../core/errors.js';

/**
 * Parses the command line and runs the command. Whatever fails is one line on stderr and exit 1,
 * never a stack trace: a usage error is `fnbus: <what>` and the command's usage line (not its
 * whole help); a FnbusError is its message; a port in use is `fnbus: port 8080 on 127.0.0.1 is
 * in use`. An unexpected error is one line too; FNBUS_DEBUG=1 adds its stack.
 */
export async function runCli(program: Command, argv: readonly string[]): Promise<void> {
  forEachCommand(program, (command) => {
    command
      .configureOutput({
        outputError: (text, write) => write(text.replace(/^error: /, 'fnbus: ')),
      })
      .showHelpAfterError(`usage: ${commandPath(command)} ${command.usage()}`);
  });
  if (argv.length <= 2) {
    // No command is a usage error too: the usage line and where the list is, not the whole help.
    process.stderr.write(
      `fnbus: name a command (fnbus --help lists them)\nusage: fnbus ${program.usage()}\n`,
    );
    process.exit(1);
  }
  try {
    await program.parseAsync(argv);
  } catch (error) {
    process.stderr.write(`fnbus: ${failureLine(error)}\n`);
    if (process.env.FNBUS_DEBUG && error instanceof Error && error.stack) {
      process.stderr.write(`${error.stack}\n`);
    }
    // A service that failed to start may have left handles open (a worker thread, a client).
    process.exit(1);
  }
}

/** What a failure says to the user, in one line (a ConfigError: one line per problem). */
export function failureLine(error: unknown): string {
  const listen = listenError(error);
  if (listen) return listen.message;
  if (error instanceof FnbusError) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  return `unexpected error: ${message.split('\n')[0] ?? ''} (FNBUS_DEBUG=1 shows where)`;
}

function forEachCommand(command: Command, visit: (command: Command) => void): void {
  visit(command);
  for (const sub of command.commands) forEachCommand(sub, visit);
}

/** `fnbus secret create`: the names from the root down. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at; at = at.parent) names.unshift(at.name());
  return names.join(' ');
}
