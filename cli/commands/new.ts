import { relative } from 'node:path';
import type { Command } from 'commander';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';
import { templateLanguages } from '../template-languages.js';

/** `fnbus new NAME --lang L`: a function from a template, added to (or creating) a stack file. */
export function registerNewCommand(program: Command): void {
  program
    .command('new <name>')
    .description(
      'create a function from a template: its handler folder and its entry in the stack file',
    )
    .requiredOption('--lang <language>', `the template (${templateLanguages().join(', ')})`)
    .option('-f, --yaml <file>', 'the stack file to create or add to', 'stack.yml')
    .addHelpText(
      'after',
      helpExamples('fnbus new hello --lang node', 'fnbus new resize --lang python3 -f stack.yml'),
    )
    .action(async (name: string, options: { lang: string; yaml: string }) => {
      const { newFunction } = await import('../new-function.js');
      const result = newFunction({
        name,
        lang: options.lang,
        stackFile: options.yaml,
        imagePrefix: process.env.OPENFAAS_PREFIX,
      });
      const where = relative(process.cwd(), result.handlerDir);
      print(
        `created ./${where} and ${result.stackCreated ? 'wrote' : 'added it to'} ${options.yaml}\n` +
          (result.welcomeMessage ? `\n${result.welcomeMessage.trimEnd()}\n` : ''),
      );
    });
}
