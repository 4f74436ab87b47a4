import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';

export type DiskKind = 'tmpfs' | 'loop';

/**
 * Mounts a small file system of `sizeMb` at `dir`, a real disk to fill: a tmpfs, else an ext4
 * image on a loop device. Root only (CI runs as root). Returns how to unmount it, or undefined
 * when neither can be mounted here.
 */
export function mountSmallDisk(
  dir: string,
  sizeMb: number,
  kinds: readonly DiskKind[] = ['tmpfs', 'loop'],
): (() => void) | undefined {
  mkdirSync(dir, { recursive: true });
  // Lazy: a process still holding a file there (a hub being stopped) does not keep it busy.
  const unmount = () => execFileSync('umount', ['-l', dir]);
  for (const kind of kinds) {
    try {
      if (kind === 'tmpfs') {
        run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir]);
        return unmount;
      }
      const image = `${dir}.img`;
      run('truncate', ['-s', `${sizeMb}M`, image]);
      // -m 0: no blocks kept for root, so that the disk is full for everyone alike.
      run('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
      try {
        run('mount', ['-o', 'loop', image, dir]);
      } catch (error) {
        rmSync(image, { force: true });
        throw error;
      }
      return () => {
        unmount();
        rmSync(image, { force: true });
      };
    } catch {
      // not allowed here: the next kind
    }
  }
  return undefined;
}

function run(command: string, args: string[]): void {
  execFileSync(command, args, { stdio: 'ignore' });
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
