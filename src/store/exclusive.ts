// "Is a server using this store?" answered by SQLite's own locks, not a pid file: every connection to a
// WAL database (the server's, a CLI command's) keeps a SHARED lock on the file while it is open, so an
// EXCLUSIVE lock is granted only when no other process has the store open. A crashed server leaves no
// stale lock behind (the kernel drops fcntl locks with the process), which a pid file would.
import { Database } from './sqlite-driver.js';

export class StoreInUseError extends Error {
  readonly code = 'STORE_IN_USE';
  constructor(path: string, what: string) {
    super(`${path} is open in another process (a running server, or another radius-mfa command): stop it first (systemctl stop radius-mfa), then ${what}`);
    this.name = 'StoreInUseError';
  }
}

/**
 * Runs `fn` while this process alone has the database open: locking_mode EXCLUSIVE keeps the lock from
 * the first transaction until the connection closes, so no server can open the store meanwhile.
 */
export function withExclusiveStore<T>(path: string, what: string, fn: (db: Database) => T): T {
  const db = new Database(path, { fileMustExist: true, timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    try {
      db.exec('BEGIN EXCLUSIVE');
      db.exec('COMMIT');
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) throw new StoreInUseError(path, what);
      throw err;
    }
    return fn(db);
  } finally {
    db.close();
  }
}
