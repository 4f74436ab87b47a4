import { readFileSync, readdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { ImageError } from '../core/errors.js';
import { layOutWatchdogRuntime, runtimeRoot, watchdogImage } from './watchdog-runtime.js';

/** The label a watchdog image carries: the digest of the runtime it holds. */
const runtimeDigestLabel = 'dev.fnbus.runtime.digest';

/** How many of a failed build's last output lines its error quotes. */
const quotedLines = 20;

/**
 * The Docker engine of `DOCKER_HOST` (else the local socket), as the docker CLI finds it; an
 * ImageError saying so when it does not answer.
 */
export async function openDocker(): Promise<Docker> {
  const docker = new Docker();
  try {
    await docker.ping();
  } catch (error) {
    const where = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
    throw new ImageError(
      `no Docker engine answers at ${where} (${reason(error)}): start one, or set DOCKER_HOST`,
    );
  }
  return docker;
}

export interface BuildImageOptions {
  /** The build context: a folder holding a Dockerfile. */
  context: string;
  /** The image's name and tag. */
  tag: string;
  buildArgs?: Record<string, string>;
  /** Each line of the build's output as it comes. */
  progress: (line: string) => void;
}

/**
 * Builds an image through the engine's API, as `docker build` does. A failed build is an
 * ImageError quoting the step that failed and the output before it.
 */
export async function buildImage(docker: Docker, options: BuildImageOptions): Promise<void> {
  const src = readdirSync(options.context, { recursive: true, withFileTypes: true })
    .filter((entry) => !entry.isDirectory())
    .map((entry) => join(entry.parentPath, entry.name).slice(options.context.length + 1));
  const output: string[] = [];
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(
      { context: options.context, src },
      { t: options.tag, buildargs: options.buildArgs ?? {}, rm: true, forcerm: true },
    );
  } catch (error) {
    throw new ImageError(`building ${options.tag}: ${reason(error)}`);
  }
  let step = '';
  const failure = await follow(docker, stream, (event) => {
    // The engine colours a step's stderr: the lines are kept plain.
    for (const line of (event.stream ?? '').replace(ansiCodes, '').split('\n')) {
      if (line.trim() === '') continue;
      if (/^Step \d+\/\d+ : /.test(line)) step = line;
      output.push(line);
      output.splice(0, Math.max(0, output.length - quotedLines));
      options.progress(line);
    }
  });
  if (failure) {
    throw new ImageError(
      `building ${options.tag} failed: ${failure}${argsOf(step, options.buildArgs)}\n${output.join('\n')}`,
    );
  }
}

/**
 * Pushes an image to its registry, with the credentials `docker login` saved for that registry
 * (~/.docker/config.json, or $DOCKER_CONFIG) when there are some.
 */
export async function pushImage(
  docker: Docker,
  tag: string,
  progress: (line: string) => void,
): Promise<void> {
  const registry = registryOf(tag);
  // The engine wants the header even for a registry that takes anyone: then it is empty.
  const authconfig = savedCredentials(registry) ?? { serveraddress: registry };
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.getImage(tag).push({ authconfig });
  } catch (error) {
    throw new ImageError(`pushing ${tag}: ${reason(error)}`);
  }
  let last = '';
  const failure = await follow(docker, stream, (event) => {
    // Layer by layer, once each: no progress bars.
    const line =
      event.status && !event.progress ? `${event.id ? `${event.id}: ` : ''}${event.status}` : '';
    if (line && line !== last) progress(line);
    last = line || last;
  });
  if (failure) throw new ImageError(`pushing ${tag} failed: ${failure}`);
}

/**
 * Makes sure the engine has the watchdog image of this fnbus (`fnbus/watchdog:<version>`), the
 * one the templates' Dockerfiles copy /opt/fnbus from, holding exactly this installation's
 * runtime: built when missing or when it holds another (a digest label tells).
 */
export async function ensureWatchdogImage(
  docker: Docker,
  progress: (line: string) => void,
): Promise<void> {
  const context = mkdtempSync(join(tmpdir(), 'fnbus-watchdog-image-'));
  try {
    const digest = layOutWatchdogRuntime(join(context, 'fnbus'));
    const existing = await docker
      .getImage(watchdogImage)
      .inspect()
      .catch(() => undefined);
    if (existing?.Config?.Labels?.[runtimeDigestLabel] === digest) return;
    progress(`building ${watchdogImage} (the watchdog and its runtime, from this installation)`);
    writeFileSync(
      join(context, 'Dockerfile'),
      [
        '# fnbus-watchdog, the node it runs on and tini: what function images copy.',
        'FROM scratch',
        `COPY fnbus ${runtimeRoot}`,
        `LABEL ${runtimeDigestLabel}="${digest}"`,
        '',
      ].join('\n'),
    );
    await buildImage(docker, { context, tag: watchdogImage, progress: () => undefined });
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/** Terminal colour codes. */
// eslint-disable-next-line no-control-regex
const ansiCodes = /\x1b\[[0-9;]*m/g;

/**
 * The build arguments a failed step names, with their values (` (BASE_IMAGE=node:22-slim)`):
 * the engine prints `FROM ${BASE_IMAGE}` as written. Only those of a FROM line, which name images,
 * never other values (an argument may carry a token).
 */
function argsOf(step: string, buildArgs: Record<string, string> = {}): string {
  if (!/^Step \d+\/\d+ : FROM /i.test(step)) return '';
  const named = [...step.matchAll(/\$\{?(\w+)\}?/g)]
    .map((match) => match[1] as string)
    .filter((name) => buildArgs[name] !== undefined)
    .map((name) => `${name}=${buildArgs[name]}`);
  return named.length > 0 ? ` (${named.join(', ')})` : '';
}

interface ProgressEvent {
  stream?: string;
  status?: string;
  progress?: string;
  id?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/** Reads a build or push stream to its end; resolves with the engine's error, if it sent one. */
function follow(
  docker: Docker,
  stream: NodeJS.ReadableStream,
  onEvent: (event: ProgressEvent) => void,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let failure: string | undefined;
    docker.modem.followProgress(
      stream,
      (error: Error | null) => resolve(failure ?? (error ? reason(error) : undefined)),
      (event: ProgressEvent) => {
        if (event.error || event.errorDetail) {
          failure ??= event.errorDetail?.message ?? event.error;
          return;
        }
        onEvent(event);
      },
    );
  });
}

/** The registry an image name lives in, as Docker reads it: Docker Hub unless the first part names a host. */
export function registryOf(image: string): string {
  const slash = image.indexOf('/');
  const first = slash === -1 ? '' : image.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost'
    ? first
    : 'https://index.docker.io/v1/';
}

/** `docker login`'s saved credentials for a registry, as the docker CLI reads them. */
function savedCredentials(
  registry: string,
): { username: string; password: string; serveraddress: string } | undefined {
  const dir = process.env.DOCKER_CONFIG ?? join(homedir(), '.docker');
  let auths: Record<string, { auth?: string }> | undefined;
  try {
    auths = (
      JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as {
        auths?: Record<string, { auth?: string }>;
      }
    ).auths;
  } catch {
    return undefined; // no saved logins: an anonymous push, as the docker CLI's
  }
  const saved = auths?.[registry]?.auth ?? auths?.[`https://${registry}`]?.auth;
  if (!saved) return undefined;
  const decoded = Buffer.from(saved, 'base64').toString();
  const colon = decoded.indexOf(':');
  if (colon === -1) return undefined;
  return {
    username: decoded.slice(0, colon),
    password: decoded.slice(colon + 1),
    serveraddress: registry,
  };
}

/** What went wrong, in a line: the engine's message, else the error's code. */
function reason(error: unknown): string {
  if (error && typeof error === 'object') {
    const json = (error as { json?: { message?: unknown } }).json;
    if (json && typeof json.message === 'string') return json.message;
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const message = (error as { message?: unknown }).message;
    if (typeof message === 'string') return message.split('\n')[0] ?? 'error';
  }
  return String(error);
}
