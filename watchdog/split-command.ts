import { parse } from 'shell-quote';

/**
 * Splits a command line into words the way a shell would (quotes, backslashes), without ever
 * running a shell: `$VAR` stays literal and operators such as `|` or `>` are refused, since
 * nothing would interpret them.
 */
export function splitCommand(line: string): string[] {
  const words: string[] = [];
  for (const entry of parse(line, (name) => `$${name}`)) {
    if (typeof entry === 'string') {
      words.push(entry);
    } else if ('op' in entry && entry.op === 'glob') {
      words.push(entry.pattern);
    } else if ('comment' in entry) {
      break;
    } else {
      throw new Error(
        `"${line}" uses the shell operator "${entry.op}", but the command is not run through a shell; wrap it in a script (e.g. sh -c '...')`,
      );
    }
  }
  if (words.length === 0) throw new Error('the command is empty');
  return words;
}
