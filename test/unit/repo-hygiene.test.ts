import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The repository root: this file is dist/test/unit/repo-hygiene.test.js once built. */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const git = (...args: string[]) =>
  spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const inGit = git('rev-parse', '--is-inside-work-tree').stdout.trim() === 'true';

describe('the repository', () => {
  it(
    'tracks no V8 profiler logs, and ignores them',
    { skip: !inGit && 'not a git checkout' },
    () => {
      const tracked = git('ls-files').stdout.split('\n');
      assert.deepEqual(
        tracked.filter((file) => /(^|\/)isolate-[^/]*-v8\.log$/.test(file)),
        [],
      );
      // `node --prof` writes isolate-<address>-<pid>-v8.log in the working folder.
      const ignored = git('check-ignore', '--no-index', 'isolate-0x5a1b2c3d-12345-v8.log');
      assert.equal(ignored.status, 0, 'isolate-*-v8.log is not in .gitignore');
    },
  );
});
