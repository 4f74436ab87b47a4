import { readFileSync } from 'node:fs';

/** The package version, read once from package.json (two folders up from the built file). */
export const version: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

/**
 * The commit this build was made from, as the build wrote it (write-build-info.ts) into
 * dist/build-info.json: `unknown` when the build was made outside git or skipped that step.
 */
export const build: { sha: string; commitMessage: string } = readBuildInfo();

function readBuildInfo(): { sha: string; commitMessage: string } {
  try {
    const info = JSON.parse(
      readFileSync(new URL('../build-info.json', import.meta.url), 'utf8'),
    ) as Partial<{ sha: unknown; commitMessage: unknown }>;
    return {
      sha: typeof info.sha === 'string' && info.sha !== '' ? info.sha : 'unknown',
      commitMessage: typeof info.commitMessage === 'string' ? info.commitMessage : '',
    };
  } catch {
    return { sha: 'unknown', commitMessage: '' };
  }
}
