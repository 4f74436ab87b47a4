import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { Document, isMap, parseDocument } from 'yaml';
import { ValidationError } from '../core/errors.js';
import { assertDnsLabel } from '../core/function-name.js';
import { loadStack } from './stack.js';
import { templateLanguages, templatesDir } from './template-languages.js';

// Where they were first defined; stack-deployments.ts and tests import them from here.
export { templateLanguages, templatesDir };

export interface NewFunctionOptions {
  name: string;
  lang: string;
  /** The stack file to create or add to. */
  stackFile: string;
  /** Image name prefix, as faas-cli's OPENFAAS_PREFIX. */
  imagePrefix?: string;
  templates?: string;
}

export interface NewFunctionResult {
  handlerDir: string;
  stackCreated: boolean;
  welcomeMessage: string | undefined;
}

/**
 * `fnbus new NAME --lang L`, as faas-cli's `new`: copies the template's handler into ./NAME and
 * the template into ./template/L, and adds the function to the stack file (creating it if
 * needed), keeping the file's comments.
 * Nothing is written unless every check passes.
 */
export function newFunction(options: NewFunctionOptions): NewFunctionResult {
  const { name, lang, stackFile, imagePrefix = '', templates = templatesDir } = options;
  assertDnsLabel(name, 'function name');
  const languages = templateLanguages(templates);
  if (!languages.includes(lang)) {
    throw new ValidationError(`no template for "${lang}"; choose one of: ${languages.join(', ')}`);
  }
  const stackPath = resolve(stackFile);
  const stackDir = resolve(stackPath, '..');
  const handlerDir = join(stackDir, name);
  if (existsSync(handlerDir)) {
    throw new ValidationError(
      `the folder ${relative(process.cwd(), handlerDir) || '.'} already exists`,
    );
  }
  const stackCreated = !existsSync(stackPath);
  if (!stackCreated && name in loadStack(stackPath, process.env).functions) {
    throw new ValidationError(`${stackFile} already has a function named ${name}`);
  }

  const template = join(templates, lang);
  const document = stackCreated
    ? new Document({
        version: '1.0',
        // faas-cli refuses any other provider name, and it reads ./stack.yml by default.
        provider: { name: 'openfaas', gateway: 'http://127.0.0.1:8080' },
        functions: {},
      })
    : parseDocument(readFileSync(stackPath, 'utf8'));
  const functions = document.get('functions');
  if (isMap(functions)) functions.flow = false;
  document.setIn(['functions', name], {
    lang,
    handler: `./${name}`,
    image: `${imagePrefix ? `${imagePrefix.replace(/\/$/, '')}/` : ''}${name}:latest`,
  });
  cpSync(join(template, 'function'), handlerDir, { recursive: true });
  // faas-cli's deploy and build read ./template/<lang>/template.yml (faas-cli new pulls it there):
  // with a copy beside the stack, faas-cli works on this folder too. An existing one is kept.
  const templateCopy = join(stackDir, 'template', lang);
  if (!existsSync(templateCopy)) cpSync(template, templateCopy, { recursive: true });
  writeFileSync(stackPath, String(document));

  const templateYaml = parseDocument(
    readFileSync(join(template, 'template.yml'), 'utf8'),
  ).toJS() as {
    welcome_message?: string;
  };
  return { handlerDir, stackCreated, welcomeMessage: templateYaml.welcome_message };
}

/**
 * Writes fnbus's templates to `<dir>/template/<lang>/`, as faas-cli's `template pull` does its
 * own, and a `dockerfile` template (its template.yml only: such a function's folder holds its
 * Dockerfile), which faas-cli requires for `lang: dockerfile`. A template already there is kept
 * unless `overwrite`. Returns a line per template saying what was done.
 */
export function pullTemplates(dir: string, overwrite: boolean): string[] {
  const lines: string[] = [];
  const write = (lang: string, copy: (to: string) => void) => {
    const to = join(dir, 'template', lang);
    if (existsSync(to) && !overwrite) {
      lines.push(`template/${lang}: kept (there already; --overwrite replaces it)`);
      return;
    }
    rmSync(to, { recursive: true, force: true });
    copy(to);
    lines.push(`template/${lang}: written`);
  };
  for (const lang of templateLanguages()) {
    write(lang, (to) => cpSync(join(templatesDir, lang), to, { recursive: true }));
  }
  write('dockerfile', (to) => {
    mkdirSync(to, { recursive: true });
    writeFileSync(
      join(to, 'template.yml'),
      "# A function's own Dockerfile, in its handler folder: built as it is.\nlanguage: dockerfile\n",
    );
  });
  return lines;
}
