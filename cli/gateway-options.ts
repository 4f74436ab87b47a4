import type { Command } from 'commander';
import { ValidationError } from '../core/errors.js';

/**
 * The options every command that talks to a gateway takes, as faas-cli names them. Registration
 * only: nothing here loads the HTTP client (see open-gateway.ts).
 */
export function gatewayOptions(command: Command): Command {
  return command
    .option(
      '-g, --gateway <url>',
      'the gateway (default: $FNBUS_GATEWAY, else $OPENFAAS_URL, else http://127.0.0.1:8080)',
    )
    .option('--username <user>', 'basic-auth user (default: $FNBUS_USERNAME, else fnbus login’s)')
    .option(
      '--password <password>',
      'basic-auth password (default: $FNBUS_PASSWORD, else fnbus login’s)',
    )
    .option('--tls-no-verify', 'https: take any certificate');
}

/** A repeatable option's values, in order (`-e A=1 -e B=2`). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `KEY=VALUE` option values as a map (undefined for none); `flag` names the option in errors. */
export function keyValuePairs(values: string[], flag: string): Record<string, string> | undefined {
  if (values.length === 0) return undefined;
  const result: [string, string][] = [];
  for (const value of values) {
    const at = value.indexOf('=');
    if (at <= 0) throw new ValidationError(`${flag} takes KEY=VALUE, not "${value}"`);
    result.push([value.slice(0, at), value.slice(at + 1)]);
  }
  return Object.fromEntries(result);
}
