import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The templates shipped with fnbus, two folders up from the built module. */
export const templatesDir = fileURLToPath(new URL('../../templates', import.meta.url));

/** The languages there is a template for. */
export function templateLanguages(templates = templatesDir): string[] {
  return readdirSync(templates, { withFileTypes: true })
    .filter(
      (entry) => entry.isDirectory() && existsSync(join(templates, entry.name, 'template.yml')),
    )
    .map((entry) => entry.name)
    .sort();
}
