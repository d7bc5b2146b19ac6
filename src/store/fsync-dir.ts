import { closeSync, fsyncSync, openSync } from 'node:fs';

/** A rename is durable only once its directory is on disk too (POSIX): backup, restore and key rotation rely on it. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
