import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const cli = join(root, 'dist', 'cli', 'main.js');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  version: string;
};
const run = promisify(execFile);

describe('fnbus CLI', () => {
  it('prints its version', async () => {
    assert.equal((await run(cli, ['--version'])).stdout.trim(), version);
    assert.equal((await run(cli, ['version'])).stdout.trim(), version);
  });

  it('prints help', async () => {
    const { stdout } = await run(cli, ['--help']);
    assert.match(stdout, /Usage: fnbus/);
  });

  it('exits non-zero on an unknown command, saying so', async () => {
    await assert.rejects(run(cli, ['bogus']), (error: { code: number; stderr: string }) => {
      assert.equal(error.code, 1);
      assert.match(error.stderr, /unknown command 'bogus'/);
      return true;
    });
  });
});
