import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { templateLanguages, templatesDir } from '../../cli/new-function.js';
import { watchdogImage } from '../../cli/watchdog-runtime.js';

/** The ENV lines of a Dockerfile, as one map. */
function dockerfileEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  const joined = text.replace(/\\\n\s*/g, ' ');
  for (const line of joined.split('\n')) {
    const match = /^ENV\s+(.*)$/.exec(line.trim());
    if (!match) continue;
    for (const pair of (match[1] ?? '').matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
      env[pair[1] as string] = (pair[2] as string).replace(/^"|"$/g, '');
    }
  }
  return env;
}

describe("templates' Dockerfiles", () => {
  for (const lang of templateLanguages()) {
    const dockerfile = readFileSync(join(templatesDir, lang, 'Dockerfile'), 'utf8');
    const template = parse(readFileSync(join(templatesDir, lang, 'template.yml'), 'utf8')) as {
      fprocess: string;
      watchdog: Record<string, string>;
      environment: Record<string, string>;
    };

    it(`${lang}: runs template.yml's command with its watchdog settings and defaults, for a container of its own`, () => {
      const env = dockerfileEnv(dockerfile);
      assert.equal(env.fprocess, template.fprocess);
      const expected = { ...template.watchdog, ...template.environment };
      for (const [name, value] of Object.entries(expected)) {
        // One function per container: the runner on 3000, OpenFaaS's port.
        assert.equal(env[name], value.replace('${PORT}', '3000'), `${lang}: ENV ${name}`);
      }
    });

    it(`${lang}: copies the runtime of this fnbus version, starts it behind tini, as a user that is not root`, () => {
      assert.match(dockerfile, new RegExp(`^ARG WATCHDOG_IMAGE=${watchdogImage}$`, 'm'));
      assert.match(dockerfile, /^ARG BASE_IMAGE=\S+$/m);
      assert.match(dockerfile, /^USER 10001:10001$/m);
      assert.match(
        dockerfile,
        /^ENTRYPOINT \["\/opt\/fnbus\/bin\/tini", "--", "\/opt\/fnbus\/bin\/fnbus-watchdog"\]$/m,
      );
    });
  }
});
