import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InstallError } from '../core/errors.js';

/** templates/install.sh; this file is dist/cli/template-dependencies.js once built. */
const installScript = fileURLToPath(new URL('../../templates/install.sh', import.meta.url));

/** How many of the installer's last output lines an error quotes. */
const quotedLines = 5;

/**
 * What a handler folder needs installed, if anything: a package.json with dependencies whose
 * node_modules is missing or older than it, a requirements.txt with requirements whose
 * .python_packages is. An up-to-date install is not run again (npm alone takes seconds).
 */
export function pendingInstalls(handlerPath: string): string[] {
  const pending: string[] = [];
  const manifest = join(handlerPath, 'package.json');
  if (existsSync(manifest) && hasNodeDependencies(manifest)) {
    // npm writes node_modules/.package-lock.json on every install.
    if (isStale(join(handlerPath, 'node_modules', '.package-lock.json'), manifest)) {
      pending.push('npm install');
    }
  }
  const requirements = join(handlerPath, 'requirements.txt');
  if (existsSync(requirements) && hasRequirements(requirements)) {
    if (isStale(join(handlerPath, '.python_packages'), requirements)) pending.push('pip install');
  }
  return pending;
}

/**
 * Installs a template handler's dependencies in its folder (templates/install.sh) when
 * pendingInstalls says so, saying what it does through `progress`. A failed install is a
 * FnbusError quoting the installer's last lines: deploying a handler without its dependencies
 * would only fail later, at its first call.
 */
export async function installDependencies(
  name: string,
  handlerPath: string,
  progress: (line: string) => void,
): Promise<void> {
  const pending = pendingInstalls(handlerPath);
  if (pending.length === 0) return;
  progress(`${name}: installing dependencies (${pending.join(', ')}) in ${handlerPath}`);
  const startedAt = Date.now();
  const output: string[] = [];
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn('sh', [installScript, handlerPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer) => {
      output.push(...chunk.toString().split('\n').filter(Boolean));
      output.splice(0, Math.max(0, output.length - quotedLines));
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', (error) => {
      output.push(error.message);
      resolve(null);
    });
    child.once('close', resolve);
  });
  if (code !== 0) {
    throw new InstallError(
      `${name}: installing dependencies in ${handlerPath} failed (exit ${code ?? 'error'}): ${output.join(' | ')}`,
    );
  }
  progress(`${name}: dependencies installed in ${((Date.now() - startedAt) / 1000).toFixed(1)}s`);
}

function hasNodeDependencies(manifest: string): boolean {
  try {
    const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { dependencies?: object };
    return Object.keys(parsed.dependencies ?? {}).length > 0;
  } catch {
    return true; // npm will say what is wrong with it
  }
}

function hasRequirements(file: string): boolean {
  return readFileSync(file, 'utf8')
    .split('\n')
    .some((line) => line.trim() !== '' && !line.trim().startsWith('#'));
}

/** Missing, or last written before `source` was. */
function isStale(installed: string, source: string): boolean {
  try {
    return statSync(installed).mtimeMs < statSync(source).mtimeMs;
  } catch {
    return true;
  }
}
