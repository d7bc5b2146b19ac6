// Backups of the SQLite store: an online copy (SQLite's backup API, consistent while the server writes),
// sealed together with the store key under a passphrase (scrypt + AES-256-GCM). One file restores
// everything, and the file alone is useless: the key inside is as safe as the passphrase.
//
// File: "radius-mfa backup 1\n" + header JSON + "\n" + ciphertext + GCM tag (16). The two text lines are
// the additional data, so a changed header fails to decrypt. Plaintext: store key (32) | SQLite file.
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Database } from './sqlite-driver.js';
import { KEY_BYTES, keyFingerprint } from './secret-box.js';
import { withExclusiveStore } from './exclusive.js';
import { fsyncDir } from './fsync-dir.js';

const MAGIC = 'radius-mfa backup 1\n';
// scrypt N=2^17, r=8: 128 MiB and about half a second per try, for a file that may leave the host.
const SCRYPT = { N: 1 << 17, r: 8, p: 1 } as const;
const MAXMEM = 256 * 1024 * 1024;

export class BackupError extends Error {
  constructor(
    readonly code: 'NOT_A_BACKUP' | 'BAD_PASSPHRASE' | 'KEY_MISMATCH' | 'FILE_EXISTS' | 'NO_STORE' | 'CORRUPT',
    message: string,
  ) {
    super(message);
    this.name = 'BackupError';
  }
}

interface Header {
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  iv: string;
  created: string;
  users: number;
}

function deriveKey(passphrase: string, h: Pick<Header, 'N' | 'r' | 'p' | 'salt'>): Buffer {
  return scryptSync(passphrase.normalize('NFC'), Buffer.from(h.salt, 'base64'), 32, { N: h.N, r: h.r, p: h.p, maxmem: MAXMEM });
}

/** Writes `bytes` to a new file (mode 0600) and fsyncs it; refuses to replace an existing file. */
function writeNewFile(path: string, bytes: Buffer): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new BackupError('FILE_EXISTS', `${path} exists: give a new file name (a backup never overwrites a file)`);
    throw err;
  }
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function storeFacts(path: string, key: Buffer): { users: number } {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const ok = db.pragma('quick_check', { simple: true });
    if (ok !== 'ok') throw new BackupError('CORRUPT', `${path}: SQLite quick_check says ${String(ok)}`);
    const stored = db.prepare<[], string>("SELECT value FROM meta WHERE key = 'key_check'").pluck().get();
    if (stored !== keyFingerprint(key)) throw new BackupError('KEY_MISMATCH', `the key does not match the store ${path}: a backup with it could not be read`);
    return { users: db.prepare<[], number>('SELECT count(*) FROM users').pluck().get() ?? 0 };
  } finally {
    db.close();
  }
}

/** Copies the live store with SQLite's online backup API and writes it, sealed with `key`, to `outFile`. */
export async function writeBackup(storePath: string, key: Buffer, passphrase: string, outFile: string, now = new Date()): Promise<{ users: number; bytes: number }> {
  if (!existsSync(storePath)) throw new BackupError('NO_STORE', `${storePath} does not exist: check store.path`);
  if (existsSync(outFile)) throw new BackupError('FILE_EXISTS', `${outFile} exists: give a new file name (a backup never overwrites a file)`);
  const tmp = mkdtempSync(join(tmpdir(), 'radius-mfa-backup-'));
  try {
    const copy = join(tmp, 'store.db');
    const db = new Database(storePath, { fileMustExist: true });
    try {
      await db.backup(copy);
    } finally {
      db.close();
    }
    const { users } = storeFacts(copy, key);
    const header: Header = { kdf: 'scrypt', ...SCRYPT, salt: randomBytes(16).toString('base64'), iv: randomBytes(12).toString('base64'), created: now.toISOString(), users };
    const head = Buffer.from(`${MAGIC}${JSON.stringify(header)}\n`, 'utf8');
    const cipher = createCipheriv('aes-256-gcm', deriveKey(passphrase, header), Buffer.from(header.iv, 'base64'));
    cipher.setAAD(head);
    const body = Buffer.concat([cipher.update(key), cipher.update(readFileSync(copy)), cipher.final(), cipher.getAuthTag()]);
    const out = Buffer.concat([head, body]);
    writeNewFile(outFile, out);
    return { users, bytes: out.length };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export interface OpenedBackup {
  key: Buffer;
  database: Buffer;
  created: string;
  users: number;
}

/** Decrypts a backup file; BAD_PASSPHRASE when the passphrase (or the file) is wrong. */
export function readBackup(file: string, passphrase: string): OpenedBackup {
  const raw = readFileSync(file);
  const magicEnd = MAGIC.length;
  const headerEnd = raw.indexOf(0x0a, magicEnd);
  if (raw.subarray(0, magicEnd).toString('latin1') !== MAGIC || headerEnd < 0) {
    throw new BackupError('NOT_A_BACKUP', `${file} is not a radius-mfa backup (it must start with "${MAGIC.trim()}")`);
  }
  let header: Header;
  try {
    header = JSON.parse(raw.subarray(magicEnd, headerEnd).toString('utf8')) as Header;
  } catch {
    throw new BackupError('NOT_A_BACKUP', `${file}: the header is damaged`);
  }
  const body = raw.subarray(headerEnd + 1);
  if (header.kdf !== 'scrypt' || body.length < KEY_BYTES + 16) throw new BackupError('NOT_A_BACKUP', `${file}: unknown format or truncated`);
  const decipher = createDecipheriv('aes-256-gcm', deriveKey(passphrase, header), Buffer.from(header.iv, 'base64'));
  decipher.setAAD(raw.subarray(0, headerEnd + 1));
  decipher.setAuthTag(body.subarray(body.length - 16));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
  } catch {
    throw new BackupError('BAD_PASSPHRASE', `cannot decrypt ${file}: wrong passphrase, or the file was changed`);
  }
  return { key: plain.subarray(0, KEY_BYTES), database: plain.subarray(KEY_BYTES), created: header.created, users: header.users };
}

export interface RestoreTarget {
  storePath: string;
  /** Where the key goes; undefined when the config gives store.encryption_key (it must equal the backup's). */
  keyFile?: string;
  configuredKey?: Buffer;
}

/**
 * Replaces the store (and key file) with the backup's. Refuses while any process has the store open.
 * What it replaces is kept beside it as *.before-restore-<time>.
 */
export function restoreBackup(backup: OpenedBackup, target: RestoreTarget, now = new Date()): { kept: string[] } {
  if (target.configuredKey && !target.configuredKey.equals(backup.key)) {
    throw new BackupError('KEY_MISMATCH', 'store.encryption_key in the config is not the key of this backup: remove store.encryption_key so the key file is restored, or restore a backup taken with that key');
  }
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  mkdirSync(dirname(target.storePath), { recursive: true, mode: 0o700 });
  if (target.keyFile) mkdirSync(dirname(target.keyFile), { recursive: true, mode: 0o700 });
  const staged = `${target.storePath}.restore-${process.pid}`;
  writeNewFile(staged, backup.database);
  try {
    storeFacts(staged, backup.key);
  } catch (err) {
    unlinkSync(staged);
    throw err;
  }
  const kept: string[] = [];
  const swap = () => {
    if (target.keyFile) {
      if (existsSync(target.keyFile)) {
        renameSync(target.keyFile, `${target.keyFile}.before-restore-${stamp}`);
        kept.push(`${target.keyFile}.before-restore-${stamp}`);
      }
      writeNewFile(target.keyFile, Buffer.from(`${backup.key.toString('hex')}\n`));
    }
    renameSync(staged, target.storePath);
    fsyncDir(dirname(target.storePath));
  };
  try {
    if (!existsSync(target.storePath)) {
      swap();
      return { kept };
    }
    withExclusiveStore(target.storePath, 'restore', (db) => {
      // Fold the old WAL into the old file before it is set aside: its last commits stay with it.
      db.pragma('wal_checkpoint(TRUNCATE)');
      renameSync(target.storePath, `${target.storePath}.before-restore-${stamp}`);
      kept.unshift(`${target.storePath}.before-restore-${stamp}`);
      for (const suffix of ['-wal', '-shm']) rmSync(`${target.storePath}${suffix}`, { force: true });
      swap();
    });
  } finally {
    rmSync(staged, { force: true });
  }
  return { kept };
}
