import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import Docker from 'dockerode';
import { freePort, request } from './http.js';
import { waitFor } from './wait.js';
import { makeTempDir } from './watchdog.js';

/**
 * A Docker engine of the test's own: Debian's containerd and dockerd (docker.io), everything in a
 * temp folder, no bridge and no iptables rules, so that several run at once beside anything else
 * on the machine. Builds and `--network host` containers work; published ports do not.
 */
export interface RunningDocker {
  docker: Docker;
  /** `unix://<dir>/docker.sock`: DOCKER_HOST for the CLI under test. */
  host: string;
  stop(): Promise<void>;
}

/** Debian's registry (docker-registry) on a loopback port, its storage in a temp folder. */
export interface RunningRegistry {
  /** `127.0.0.1:PORT`, the host part of image names pushed there. */
  address: string;
  /** The repositories it holds. */
  catalog(): Promise<string[]>;
  stop(): Promise<void>;
}

/** Why Docker tests cannot run here, or undefined when they can. */
export function dockerUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'a Docker engine of its own needs root';
  for (const binary of ['/usr/sbin/dockerd', '/usr/bin/containerd', '/usr/bin/docker-registry']) {
    if (!existsSync(binary))
      return `${binary} is missing (apt-get install docker.io docker-registry)`;
  }
  return undefined;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function daemon(command: string, args: string[], log: string): ChildProcess {
  const out = join(dirname(log), `${command.split('/').pop() ?? 'daemon'}.out`);
  const child = spawn('sh', ['-c', `exec "$0" "$@" >>"${out}" 2>&1`, command, ...args], {
    stdio: 'ignore',
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export async function startDocker(): Promise<RunningDocker> {
  const dir = makeTempDir('fnbus-docker-');
  const containerdSocket = join(dir, 'containerd.sock');
  writeFileSync(
    join(dir, 'containerd.toml'),
    [
      'version = 2',
      `root = "${dir}/containerd-root"`,
      `state = "${dir}/containerd-state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${containerdSocket}"`,
      '[ttrpc]',
      `  address = "${containerdSocket}.ttrpc"`,
      '',
    ].join('\n'),
  );
  const containerd = daemon(
    '/usr/bin/containerd',
    ['--config', join(dir, 'containerd.toml'), '--log-level', 'warn'],
    join(dir, 'containerd.log'),
  );
  await waitFor(() => existsSync(containerdSocket) || containerd.exitCode !== null, {
    timeoutMs: 20_000,
    what: 'containerd',
  });
  const socket = join(dir, 'docker.sock');
  writeFileSync(join(dir, 'daemon.json'), '{}\n');
  const dockerd = daemon(
    '/usr/sbin/dockerd',
    [
      '--config-file',
      join(dir, 'daemon.json'),
      '--host',
      `unix://${socket}`,
      '--containerd',
      containerdSocket,
      '--data-root',
      join(dir, 'data'),
      '--exec-root',
      join(dir, 'exec'),
      '--pidfile',
      join(dir, 'dockerd.pid'),
      '--bridge=none',
      '--iptables=false',
      '--ip-masq=false',
      '--log-level',
      'warn',
    ],
    join(dir, 'dockerd.log'),
  );
  const docker = new Docker({ socketPath: socket });
  await waitFor(
    async () => {
      if (dockerd.exitCode !== null)
        throw new Error(readFileSync(join(dir, 'dockerd.out'), 'utf8'));
      return docker.ping().then(
        () => true,
        () => false,
      );
    },
    { timeoutMs: 60_000, intervalMs: 100, what: 'dockerd' },
  );
  return {
    docker,
    host: `unix://${socket}`,
    async stop() {
      await stopChild(dockerd, 20_000);
      await stopChild(containerd, 10_000);
      unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Lazily unmounts whatever is still mounted under `dir` (a container's layers), deepest first. */
function unmountUnder(dir: string): void {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((target) => target.startsWith(`${dir}/`))
    .sort()
    .reverse();
  for (const target of mounts) {
    try {
      execFileSync('umount', ['-l', target]);
    } catch {
      // gone already
    }
  }
}

export async function startRegistry(): Promise<RunningRegistry> {
  const dir = makeTempDir('fnbus-registry-');
  const port = await freePort();
  writeFileSync(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: {level: warn}',
      `storage: {filesystem: {rootdirectory: ${dir}/storage}, delete: {enabled: true}}`,
      `http: {addr: 127.0.0.1:${port}}`,
      '',
    ].join('\n'),
  );
  const registry = daemon(
    '/usr/bin/docker-registry',
    ['serve', join(dir, 'config.yml')],
    join(dir, 'registry.log'),
  );
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (registry.exitCode !== null) throw new Error('docker-registry exited');
      return (await request(`${base}/v2/`).catch(() => undefined))?.status === 200;
    },
    { timeoutMs: 20_000, intervalMs: 100, what: 'docker-registry' },
  );
  return {
    address: `127.0.0.1:${port}`,
    async catalog() {
      const res = await request(`${base}/v2/_catalog`);
      return (JSON.parse(res.text) as { repositories: string[] }).repositories;
    },
    async stop() {
      await stopChild(registry, 10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A base image made of this machine's own files, as nothing can be pulled here: busybox (a shell
 * and the usual tools) and either `node` (with npm) or `python3` (with its standard library),
 * with the libraries they link to. Imported as `fnbus-test/node:local` or
 * `fnbus-test/python3:local`; returns that name.
 */
export async function importBaseImage(
  docker: Docker,
  runtime: 'node' | 'python3',
): Promise<string> {
  const tag = `fnbus-test/${runtime}:local`;
  const root = makeTempDir(`fnbus-rootfs-${runtime}-`);
  try {
    for (const folder of ['bin', 'usr/bin', 'usr/local/bin', 'etc', 'tmp', 'home', 'root']) {
      mkdirSync(join(root, folder), { recursive: true });
    }
    chmodSync(join(root, 'tmp'), 0o1777);
    copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
    for (const applet of execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split(
      '\n',
    )) {
      if (applet && !existsSync(join(root, 'bin', applet)))
        symlinkSync('busybox', join(root, 'bin', applet));
    }
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\n');
    if (runtime === 'node') {
      const node = realpathSync(process.execPath);
      copyWithLibraries(node, join(root, 'usr', 'local', 'bin', 'node'), root);
      const npm = realpathSync(join(dirname(node), '..', 'lib', 'node_modules', 'npm'));
      cpSync(npm, join(root, 'usr', 'local', 'lib', 'node_modules', 'npm'), { recursive: true });
      symlinkSync(
        '../lib/node_modules/npm/bin/npm-cli.js',
        join(root, 'usr', 'local', 'bin', 'npm'),
      );
      symlinkSync('/bin/busybox', join(root, 'usr', 'bin', 'env')); // npm's #!/usr/bin/env node
    } else {
      copyWithLibraries('/usr/bin/python3.11', join(root, 'usr', 'bin', 'python3'), root);
      cpSync('/usr/lib/python3.11', join(root, 'usr', 'lib', 'python3.11'), {
        recursive: true,
        filter: (source) => !/\/(test|__pycache__|idlelib|tkinter|ensurepip)(\/|$)/.test(source),
      });
      // Its extension modules' libraries (ssl, sqlite, ...), as python:3.12-slim has them.
      const dynload = join('/usr/lib/python3.11', 'lib-dynload');
      for (const module of execFileSync('ls', [dynload], { encoding: 'utf8' }).split('\n')) {
        if (module.endsWith('.so')) copyLibrariesOf(join(dynload, module), root);
      }
    }
    const tar = spawn('tar', ['-C', root, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const stream = await docker.importImage(tar.stdout, {
      repo: tag.split(':')[0],
      tag: 'local',
      changes: ['ENV PATH=/usr/local/bin:/usr/bin:/bin', 'WORKDIR /'],
    } as object);
    await new Promise((resolve, reject) =>
      docker.modem.followProgress(stream, (error: Error | null) =>
        error ? reject(error) : resolve(undefined),
      ),
    );
    return tag;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Copies `binary` to `to`, and the shared libraries it links to to the same paths under `root`. */
function copyWithLibraries(binary: string, to: string, root: string): void {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(binary, to);
  copyLibrariesOf(binary, root);
}

function copyLibrariesOf(binary: string, root: string): void {
  for (const line of execFileSync('ldd', [binary], { encoding: 'utf8' }).split('\n')) {
    const path = /=>\s*(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)\s+\(/.exec(line)?.[1];
    if (!path) continue;
    const target = join(root, path);
    if (existsSync(target)) continue;
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(realpathSync(path), target);
  }
}

/**
 * An image that is fnbus-watchdog on `base` and nothing else, for functions given as a command
 * (`envProcess`: `cat`, `sh -c ...`), as `tag`: built with the watchdog runtime of this checkout.
 */
export async function buildWatchdogOnly(docker: Docker, base: string, tag: string): Promise<void> {
  const { buildImage, ensureWatchdogImage } = await import('../../cli/docker-images.js');
  const { watchdogImage } = await import('../../cli/watchdog-runtime.js');
  await ensureWatchdogImage(docker, () => undefined);
  const context = makeTempDir('fnbus-watchdog-only-');
  writeFileSync(
    join(context, 'Dockerfile'),
    [
      `FROM ${watchdogImage} AS watchdog`,
      `FROM ${base}`,
      'COPY --from=watchdog /opt/fnbus /opt/fnbus',
      'USER 10001:10001',
      'ENTRYPOINT ["/opt/fnbus/bin/tini", "--", "/opt/fnbus/bin/fnbus-watchdog"]',
      '',
    ].join('\n'),
  );
  try {
    await buildImage(docker, { context, tag, progress: () => undefined });
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/**
 * Builds `tag` from some of `context`'s files (`paths`: files or folders under it) with the
 * Dockerfile at `dockerfile` (relative to `context`); rejects with the engine's error.
 */
export async function buildFrom(
  docker: Docker,
  options: {
    context: string;
    paths: string[];
    dockerfile: string;
    tag: string;
    buildargs?: Record<string, string>;
  },
): Promise<void> {
  const { readdirSync, statSync } = await import('node:fs');
  const src = [options.dockerfile];
  for (const path of options.paths) {
    const full = join(options.context, path);
    if (!statSync(full).isDirectory()) {
      src.push(path);
      continue;
    }
    for (const entry of readdirSync(full, { recursive: true, withFileTypes: true })) {
      if (!entry.isDirectory()) {
        src.push(join(entry.parentPath, entry.name).slice(options.context.length + 1));
      }
    }
  }
  const stream = await docker.buildImage(
    { context: options.context, src },
    {
      t: options.tag,
      dockerfile: options.dockerfile,
      buildargs: options.buildargs ?? {},
      rm: true,
    },
  );
  let failure: string | undefined;
  await new Promise((resolve, reject) =>
    docker.modem.followProgress(
      stream,
      (error: Error | null) => (error ? reject(error) : resolve(undefined)),
      (event: { error?: string }) => {
        failure ??= event.error;
      },
    ),
  );
  if (failure) throw new Error(`building ${options.tag}: ${failure}`);
}
