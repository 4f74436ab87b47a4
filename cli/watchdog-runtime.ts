import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  realpathSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageError } from '../core/errors.js';
import { version } from '../watchdog/version.js';

/** The package's root: two folders up from this built module (dist/cli/). */
const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Where a function image holds fnbus's runtime: the watchdog, the node it runs on, tini. */
export const runtimeRoot = '/opt/fnbus';

/** The image the templates' Dockerfiles copy the runtime from (their WATCHDOG_IMAGE). */
export const watchdogImage = `fnbus/watchdog:${version}`;

/** The watchdog's npm dependencies, whose own dependencies come along. */
const watchdogPackages = ['send', 'shell-quote'];

/**
 * Lays out fnbus's watchdog runtime in `dir` as it sits at /opt/fnbus in a function image, and
 * returns a digest of what it holds:
 *   bin/node, lib/        this machine's node and every library it links to, the loader too:
 *                         it runs on any glibc base image, whatever that image has
 *   bin/fnbus-watchdog    starts the watchdog on that node, through that loader
 *   bin/tini              the init that forwards signals and reaps (this machine's tini)
 *   app/                  the built watchdog (dist/watchdog, dist/core) and its npm packages
 * The node is started through the loader (`ld.so --library-path`), not LD_LIBRARY_PATH, so the
 * function's processes never see fnbus's libraries.
 */
export function layOutWatchdogRuntime(dir: string): string {
  const bin = join(dir, 'bin');
  const lib = join(dir, 'lib');
  const app = join(dir, 'app');
  mkdirSync(bin, { recursive: true });
  mkdirSync(lib, { recursive: true });
  const node = realpathSync(process.execPath);
  copyFileSync(node, join(bin, 'node'));
  const loader = copyLibraries(node, lib);
  copyFileSync(findTini(), join(bin, 'tini'));
  chmodSync(join(bin, 'tini'), 0o755);

  for (const part of ['watchdog', 'core']) {
    cpSync(join(packageRoot, 'dist', part), join(app, 'dist', part), {
      recursive: true,
      filter: (source) => !/\.(d\.ts|map)$/.test(source),
    });
  }
  const buildInfo = join(packageRoot, 'dist', 'build-info.json');
  if (existsSync(buildInfo)) copyFileSync(buildInfo, join(app, 'dist', 'build-info.json'));
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify({ name: 'fnbus-watchdog', version, private: true, type: 'module' })}\n`,
  );
  for (const name of packageClosure(watchdogPackages)) {
    cpSync(packageDir(name), join(app, 'node_modules', name), { recursive: true });
  }

  // The young generation as bin/fnbus-watchdog sets it on a host (see there).
  const start = join(bin, 'fnbus-watchdog');
  writeFileSync(
    start,
    [
      '#!/bin/sh',
      "# fnbus-watchdog on the node it came with, through that node's own loader and libraries.",
      `exec ${runtimeRoot}/lib/${loader} --library-path ${runtimeRoot}/lib ${runtimeRoot}/bin/node --max-semi-space-size=2 ${runtimeRoot}/app/dist/watchdog/main.js "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(start, 0o755);
  return digestOf(dir);
}

/**
 * Copies the shared libraries `binary` links to (ldd's list) into `lib`; returns the loader's
 * file name. A node linked statically has none: then there is no loader to go through.
 */
function copyLibraries(binary: string, lib: string): string {
  let listing: string;
  try {
    listing = execFileSync('ldd', [binary], { encoding: 'utf8' });
  } catch {
    throw new ImageError(
      'cannot list the libraries node links to (ldd): function images need a glibc system to build on',
    );
  }
  let loader: string | undefined;
  for (const line of listing.split('\n')) {
    // "libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const path = /=>\s*(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)\s+\(/.exec(line)?.[1];
    if (!path) continue;
    copyFileSync(realpathSync(path), join(lib, basename(path)));
    if (/^ld-linux/.test(basename(path))) loader = basename(path);
  }
  if (!loader) {
    throw new ImageError(
      'node has no dynamic loader (ldd found none): function images need a glibc build of node',
    );
  }
  return loader;
}

/** tini, as Debian (tini, tini-static) and Docker (docker-init) install it. */
function findTini(): string {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/libexec/docker'].filter(Boolean);
  // Static first: it runs on any base image.
  for (const name of ['tini-static', 'docker-init', 'tini']) {
    for (const dir of dirs) {
      const file = join(dir, name);
      if (existsSync(file)) return realpathSync(file);
    }
  }
  throw new ImageError(
    'no tini on this machine (tini-static, docker-init or tini in PATH): function images start the watchdog behind it; install it (Debian: apt-get install tini)',
  );
}

/** The folder node resolves a package name to from fnbus's own modules. */
function packageDir(name: string): string {
  return join(packageRoot, 'node_modules', name);
}

/** `names` and every package they depend on, each once. */
function packageClosure(names: string[]): string[] {
  const seen = new Set<string>();
  const pending = [...names];
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (seen.has(name)) continue;
    seen.add(name);
    const manifest = JSON.parse(readFileSync(join(packageDir(name), 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    pending.push(...Object.keys(manifest.dependencies ?? {}));
  }
  return [...seen].sort();
}

/** A digest of every file's path, mode and bytes under `dir`: equal digests, equal runtimes. */
function digestOf(dir: string): string {
  const hash = createHash('sha256');
  const walk = (folder: string, prefix: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const path = join(folder, entry.name);
      const relative = `${prefix}${entry.name}`;
      if (entry.isDirectory()) {
        walk(path, `${relative}/`);
      } else {
        hash.update(`${relative}\0${statSync(path).mode & 0o777}\0`);
        hash.update(readFileSync(path));
      }
    }
  };
  walk(dir, '');
  return hash.digest('hex');
}
