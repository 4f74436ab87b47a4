/** A command's examples, for commander's `addHelpText('after', ...)`. */
export function helpExamples(...lines: string[]): string {
  return `\nExample${lines.length === 1 ? '' : 's'}:\n${lines.map((line) => `  ${line}\n`).join('')}`;
}
