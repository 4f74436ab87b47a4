import { execFileSync } from 'node:child_process';
import { ValidationError } from '../core/errors.js';

/** faas-cli's `--tag` choices: how a function's image tag is made from the stack's `image`. */
export const tagModes = ['latest', 'sha', 'branch', 'describe'] as const;
export type TagMode = (typeof tagModes)[number];

/** A `--tag` mode, or a ValidationError naming the ones there are. */
export function tagMode(value: string): TagMode {
  if (!(tagModes as readonly string[]).includes(value)) {
    throw new ValidationError(`--tag takes ${tagModes.join(', ')}, not "${value}"`);
  }
  return value as TagMode;
}

/**
 * The image a function builds to: its stack `image`, the tag made as faas-cli's `--tag` makes
 * it from git (`sha`: `<tag>-<short sha>`; `branch`: `<tag>-<branch>-<short sha>`; `describe`:
 * `<tag>-<git describe>`), and `latest` when the name has no tag.
 */
export function imageTag(image: string, mode: TagMode, stackDir: string): string {
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  const name = colon === -1 ? image : image.slice(0, colon);
  const tag = colon === -1 ? 'latest' : image.slice(colon + 1);
  if (mode === 'latest') return `${name}:${tag}`;
  const git = (...args: string[]) => {
    try {
      return execFileSync('git', args, {
        cwd: stackDir,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    } catch {
      throw new ValidationError(`--tag ${mode} needs the stack in a git repository with a commit`);
    }
  };
  const sha = git('rev-parse', '--short', 'HEAD');
  if (mode === 'sha') return `${name}:${tag}-${sha}`;
  if (mode === 'branch') {
    const branch = git('rev-parse', '--abbrev-ref', 'HEAD').replace(/[^A-Za-z0-9_.-]/g, '-');
    return `${name}:${tag}-${branch}-${sha}`;
  }
  return `${name}:${tag}-${git('describe', '--tags', '--always', '--dirty')}`;
}
