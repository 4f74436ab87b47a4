import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';

/**
 * Mounts a tmpfs of `size` (`24m`) at `dir`, a real small disk to fill: root only (CI runs as
 * root). Returns how to unmount it, or undefined when it cannot be mounted here.
 */
export function mountTmpfs(dir: string, size: string): (() => void) | undefined {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  // Lazy: a process still holding a file there (a hub being stopped) does not keep it busy.
  return () => execFileSync('umount', ['-l', dir]);
}

/** Writes `file` until its file system is full; returns the bytes written. */
export function fillDisk(file: string): number {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  let written = 0;
  try {
    for (let size = chunk.length; size > 0;) {
      try {
        written += writeSync(fd, chunk, 0, size);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
        size = size >> 1; // the last pages, in smaller writes
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}
