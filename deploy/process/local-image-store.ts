import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { ValidationError } from '../../core/errors.js';

/** What `fnbus build` made of a template function: the template and its handler's folder. */
export interface LocalImage {
  /** The template: `node`, `python3`, `alexa` (templates/<lang>). */
  lang: string;
  /** The handler's folder, absolute, on this machine. */
  handler: string;
  /**
   * The template's own command (template.yml `fprocess`, e.g. `node index.js`): what faas-cli
   * sends as envProcess for a template function, read as "run the template" here.
   */
  fprocess?: string;
  /** RFC 3339. */
  builtAt: string;
}

/**
 * Where this machine's built functions are kept: `$FNBUS_IMAGES`, else
 * `$XDG_DATA_HOME/fnbus/images`, else `~/.local/share/fnbus/images`. One store per machine, as a
 * container engine keeps one image store, so `fnbus build` and every hub on the machine agree.
 */
export function localImagesDir(env: Readonly<Record<string, string | undefined>>): string {
  if (env.FNBUS_IMAGES) return env.FNBUS_IMAGES;
  const data = env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share');
  return join(data, 'fnbus', 'images');
}

/**
 * An image name as a container engine reads it: a name without a tag or digest is `:latest`, so
 * `hello` and `hello:latest` are the same image.
 */
export function imageReference(image: string): string {
  const trimmed = image.trim();
  const last = trimmed.slice(trimmed.lastIndexOf('/') + 1);
  return last.includes(':') || last.includes('@') ? trimmed : `${trimmed}:latest`;
}

/**
 * The process provider's images: a deployment names an image, as on any provider, and the process
 * provider runs what `fnbus build` recorded for that name on this machine (a template and its
 * handler's folder). Machine paths stay here, never in a deployment, so a stack deploys the same
 * to any provider. One JSON file per image, written to a temporary file and renamed: a reader
 * sees the old build or the new one, never half of one.
 */
export class LocalImageStore {
  readonly dir: string;
  #tmpCounter = 0;

  constructor(dir: string) {
    this.dir = dir;
  }

  save(image: string, built: Omit<LocalImage, 'builtAt'>): LocalImage {
    if (!isAbsolute(built.handler)) {
      throw new ValidationError('a handler folder must be an absolute path');
    }
    const record: LocalImage = { ...built, builtAt: new Date().toISOString() };
    mkdirSync(this.dir, { recursive: true });
    const file = this.#file(image);
    const tmp = `${file}.${process.pid}.${++this.#tmpCounter}.tmp`;
    writeFileSync(tmp, JSON.stringify(record, null, 2) + '\n');
    renameSync(tmp, file);
    return record;
  }

  /** The build of `image`, or undefined when there is none (or it cannot be read). */
  find(image: string): LocalImage | undefined {
    if (!image.trim()) return undefined;
    try {
      const record = JSON.parse(readFileSync(this.#file(image), 'utf8')) as Partial<LocalImage>;
      if (typeof record.lang !== 'string' || typeof record.handler !== 'string') return undefined;
      return record as LocalImage;
    } catch {
      return undefined;
    }
  }

  #file(image: string): string {
    return join(this.dir, `${encodeURIComponent(imageReference(image))}.json`);
  }
}
