/**
 * Build step (`npm run build`): writes `build-info.json` into dist/, the commit the build was
 * made from, for `/system/info` (version.ts reads it). A build outside a git checkout (an npm
 * tarball, an exported tree) or without git writes `unknown`: the build goes on.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const git = (...args: string[]): string | undefined => {
  try {
    return execFileSync('git', args, {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
};

const sha = git('rev-parse', 'HEAD');
const info = {
  sha: sha && /^[0-9a-f]{40,64}$/.test(sha) ? sha : 'unknown',
  commitMessage: (sha && git('log', '-1', '--format=%s', sha)) ?? '',
};
writeFileSync(new URL('../build-info.json', import.meta.url), `${JSON.stringify(info)}\n`);
