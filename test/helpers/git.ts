import { execFileSync } from 'node:child_process';

/** Runs git in `dir`; its output, trimmed. */
export function git(dir: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
}

/** Commits everything in `dir` (a repository), as a test author; the commit's short sha. */
export function commitAll(dir: string, message = 'test'): string {
  git(dir, 'add', '.');
  git(dir, '-c', 'user.name=test', '-c', 'user.email=test@example.com', 'commit', '-qm', message);
  return git(dir, 'rev-parse', '--short', 'HEAD');
}
