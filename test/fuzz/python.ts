import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/watchdog.js';

/** Where `npm run fuzz` (and CI) keep the Python tools: schemathesis, openapi-spec-validator. */
export const fuzzVenv = join(repoRoot, '.bench', 'fuzz-venv');
const requirements = join(repoRoot, 'test', 'fuzz', 'requirements.txt');

const hasValidator = (python: string) =>
  spawnSync(python, ['-c', 'import openapi_spec_validator'], { stdio: 'ignore' }).status === 0;

/**
 * A Python that has openapi-spec-validator: $FNBUS_FUZZ_PYTHON, else the fuzz venv's, else
 * python3; undefined when none has it.
 */
export function fuzzPython(): string | undefined {
  const candidates = [process.env.FNBUS_FUZZ_PYTHON, join(fuzzVenv, 'bin', 'python'), 'python3'];
  return candidates.find((python) => python !== undefined && hasValidator(python));
}

/** The fuzz venv's bin folder, made and filled with the pinned requirements when missing. */
export function ensureFuzzVenv(log: (line: string) => void): string {
  const bin = join(fuzzVenv, 'bin');
  const installed = spawnSync(join(bin, 'schemathesis'), ['--version'], { encoding: 'utf8' });
  if (installed.status === 0 && installed.stdout.includes('4.32.5')) return bin;
  log(`installing ${requirements} into ${fuzzVenv}`);
  const run = (command: string, args: string[]) => {
    const result = spawnSync(command, args, { stdio: 'inherit' });
    if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed`);
  };
  if (!existsSync(join(bin, 'python'))) run('python3', ['-m', 'venv', fuzzVenv]);
  run(join(bin, 'pip'), ['install', '--quiet', '--disable-pip-version-check', '-r', requirements]);
  return bin;
}
