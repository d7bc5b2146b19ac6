// `store rotate-key`: every TOTP secret re-sealed under a new key in one SQLite transaction, so an
// interruption leaves all secrets under the old key or all under the new one, never a mix.
// Order of the steps, so that a kill at any point loses nothing:
//   1. the new key is written to KEY.new (fsynced) while the store still answers to KEY;
//   2. one transaction re-seals every secret and stores the new key's fingerprint;
//   3. KEY is kept as KEY.retired-<time> (a hard link) and KEY.new is renamed over KEY.
// Killed before 2 commits: the store is untouched and KEY.new is discarded by the next run. Killed
// between 2 and 3: the store answers to KEY.new, and the next run (or any run) finishes step 3.
import { closeSync, existsSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { KEY_BYTES, KeyError, keyFingerprint, openSecret, parseHexKey, resolveEncryptionKey, sealSecret } from './secret-box.js';
import { withExclusiveStore } from './exclusive.js';
import { fsyncDir } from './fsync-dir.js';
import { totpContext } from './sqlite.js';

export class RotationError extends Error {
  constructor(
    readonly code: 'KEY_IN_CONFIG' | 'NO_STORE' | 'KEY_MISMATCH' | 'UNREADABLE_SECRET',
    message: string,
  ) {
    super(message);
    this.name = 'RotationError';
  }
}

export interface RotationOptions {
  random?: (n: number) => Buffer;
  now?: Date;
  /** Called before the transaction with the number of secrets to re-seal. */
  onStart?: (secrets: number) => void;
  /** Tests: called after each re-sealed row inside the transaction (a throw aborts it). */
  afterRow?: (index: number) => void;
}

export interface RotationResult {
  secrets: number;
  keyFile: string;
  retiredKeyFile: string;
  /** True when this run only finished an earlier run that was interrupted after its commit. */
  resumed: boolean;
}

function writeKeyFile(path: string, key: Buffer): void {
  rmSync(path, { force: true });
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, `${key.toString('hex')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function swapKeyFiles(keyFile: string, newFile: string, stamp: string): string {
  const retired = `${keyFile}.retired-${stamp}`;
  linkSync(keyFile, retired);
  renameSync(newFile, keyFile);
  fsyncDir(dirname(keyFile));
  return retired;
}

export function rotateStoreKey(store: Config['store'], options: RotationOptions = {}): RotationResult {
  if (store.encryption_key !== undefined) {
    throw new RotationError('KEY_IN_CONFIG', 'store.encryption_key is set in the config: rotation writes a key file; move the key to a file (store.key_file, mode 0600) and remove store.encryption_key first');
  }
  const dbPath = resolve(store.path);
  if (store.path === ':memory:' || !existsSync(dbPath)) throw new RotationError('NO_STORE', `${dbPath} does not exist: check store.path`);
  const keyFile = resolve(store.key_file ?? `${store.path}.key`);
  const newFile = `${keyFile}.new`;
  const stamp = (options.now ?? new Date()).toISOString().replace(/[:.]/g, '-');
  const oldKey = resolveEncryptionKey(store).key;

  return withExclusiveStore(dbPath, 'rotate the key', (db) => {
    const stored = db.prepare<[], string>("SELECT value FROM meta WHERE key = 'key_check'").pluck().get();
    if (stored !== keyFingerprint(oldKey)) {
      const pending = existsSync(newFile) ? parseHexKey(readFileSync(newFile, 'latin1')) : undefined;
      if (pending && stored === keyFingerprint(pending)) {
        // An earlier run committed and was stopped before it swapped the files: finish it.
        const secrets = db.prepare<[], number>('SELECT count(*) FROM totp').pluck().get() ?? 0;
        return { secrets, keyFile, retiredKeyFile: swapKeyFiles(keyFile, newFile, stamp), resumed: true };
      }
      throw new RotationError('KEY_MISMATCH', `${keyFile} is not the key of ${dbPath}: restore the right key file first`);
    }
    const newKey = (options.random ?? randomBytes)(KEY_BYTES);
    if (newKey.equals(oldKey)) throw new KeyError('BAD_KEY', 'the new key equals the old one');
    writeKeyFile(newFile, newKey);
    const rows = db.prepare<[], { username: string; secret_enc: Buffer }>('SELECT username, secret_enc FROM totp').all();
    options.onStart?.(rows.length);
    const update = db.prepare<[Buffer, string]>('UPDATE totp SET secret_enc = ? WHERE username = ?');
    const reseal = db.transaction(() => {
      rows.forEach((row, i) => {
        const opened = openSecret(oldKey, row.secret_enc, totpContext(row.username));
        if (!opened.ok) throw new RotationError('UNREADABLE_SECRET', `the TOTP secret of ${row.username} does not decrypt with ${keyFile}: nothing was changed`);
        update.run(sealSecret(newKey, opened.plaintext, totpContext(row.username)), row.username);
        options.afterRow?.(i);
      });
      db.prepare("UPDATE meta SET value = ? WHERE key = 'key_check'").run(keyFingerprint(newKey));
    });
    try {
      reseal.immediate();
    } catch (err) {
      // Rolled back: the store still answers to the old key, and the new one must not be mistaken for it.
      rmSync(newFile, { force: true });
      throw err;
    }
    return { secrets: rows.length, keyFile, retiredKeyFile: swapKeyFiles(keyFile, newFile, stamp), resumed: false };
  });
}
