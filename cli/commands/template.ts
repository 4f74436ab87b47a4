import type { Command } from 'commander';
import { helpExamples } from '../help-examples.js';
import { print } from '../print.js';

/**
 * `fnbus template pull`: fnbus's templates into `./template/`, where faas-cli's build, push and
 * deploy read them (faas-cli's own `template pull` fetches OpenFaaS's from GitHub), with a
 * `dockerfile` one for functions that bring their own Dockerfile. Kept: what is there already,
 * unless `--overwrite`.
 */
export function registerTemplateCommand(program: Command): void {
  const template = program
    .command('template')
    .description("fnbus's templates, for faas-cli: `template pull` writes them to ./template/");
  template
    .command('pull')
    .description("write fnbus's templates to ./template/ (node, python3, alexa, dockerfile)")
    .option('--overwrite', 'replace templates already there')
    .addHelpText('after', helpExamples('fnbus template pull', 'fnbus template pull --overwrite'))
    .action(async (options: { overwrite?: boolean }) => {
      const { pullTemplates } = await import('../new-function.js');
      for (const line of pullTemplates(process.cwd(), options.overwrite === true)) {
        print(`${line}\n`);
      }
    });
}
