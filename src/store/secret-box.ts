import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Config } from '../config/schema.js';

// Sealed format: version(1) | iv(12) | tag(16) | ciphertext. The version byte lets a later key
// rotation or cipher change read old rows.
const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;
export const KEY_BYTES = 32;

export type OpenResult = { ok: true; plaintext: Buffer } | { ok: false; reason: 'format' | 'auth' };

/** Encrypts with AES-256-GCM; `context` (e.g. "totp:alice") is authenticated so a sealed value cannot be moved to another row. */
export function sealSecret(key: Buffer, plaintext: Buffer, context: string, random: (n: number) => Buffer = randomBytes): Buffer {
  const iv = random(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
}

/** Decrypts a sealSecret value; 'auth' means wrong key, wrong context or tampering. */
export function openSecret(key: Buffer, sealed: Uint8Array, context: string): OpenResult {
  const box = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (box.length < HEADER_BYTES || box[0] !== VERSION) return { ok: false, reason: 'format' };
  const decipher = createDecipheriv('aes-256-gcm', key, box.subarray(1, 1 + IV_BYTES));
  decipher.setAAD(Buffer.from(context, 'utf8'));
  decipher.setAuthTag(box.subarray(1 + IV_BYTES, HEADER_BYTES));
  try {
    return { ok: true, plaintext: Buffer.concat([decipher.update(box.subarray(HEADER_BYTES)), decipher.final()]) };
  } catch {
    return { ok: false, reason: 'auth' };
  }
}

/** A stable, non-secret fingerprint of the key: stored beside the data so a wrong key is caught at open. */
export function keyFingerprint(key: Buffer): string {
  return createHmac('sha256', key).update('radius-mfa store key check v1').digest('hex').slice(0, 32);
}

export class KeyError extends Error {
  constructor(
    readonly code: 'BAD_KEY' | 'KEY_FILE_MODE' | 'KEY_FILE_INVALID' | 'KEY_FILE_MISSING' | 'KEY_FILE_IO',
    message: string,
  ) {
    super(message);
    this.name = 'KeyError';
  }
}

export interface ResolvedKey {
  key: Buffer;
  /** 'store.encryption_key' or the absolute key file path. */
  source: string;
  /** True when this call created the key file. */
  created: boolean;
}

/** 64 hex chars -> 32 bytes; undefined if the text has another form. */
export function parseHexKey(text: string): Buffer | undefined {
  const t = text.trim();
  return /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : undefined;
}

/**
 * store.encryption_key, else store.key_file, else "<store.path>.key". A missing key file is
 * created with a random key, mode 0600, but only while the database does not exist yet: a new
 * key could not read the secrets already stored. Relative paths resolve against `baseDir` (the
 * process cwd, the same rule as store.path).
 */
export function resolveEncryptionKey(store: Config['store'], baseDir: string = process.cwd()): ResolvedKey {
  if (store.encryption_key !== undefined) {
    const key = parseHexKey(store.encryption_key);
    if (!key) {
      throw new KeyError('BAD_KEY', 'store.encryption_key must be 64 hex characters (32 bytes); generate one with: openssl rand -hex 32');
    }
    return { key, source: 'store.encryption_key', created: false };
  }
  const path = resolve(baseDir, store.key_file ?? `${store.path}.key`);
  // A shared store: a key made here would be this node's alone, and could not read what the others sealed.
  if (store.type === 'postgres' && !existsSync(path)) {
    throw new KeyError('KEY_FILE_MISSING', `key file ${path} is missing: with store.type postgres every node must use the same key; copy the key file from another node (or set store.encryption_key)`);
  }
  const database = resolve(baseDir, store.path);
  if (!existsSync(path) && store.path !== ':memory:' && existsSync(database) && statSync(database).size > 0) {
    throw new KeyError(
      'KEY_FILE_MISSING',
      `key file ${path} is missing but the database ${database} exists; restore the key file from backup (a new key cannot read the stored TOTP secrets)`,
    );
  }
  const created = createKeyFileIfMissing(path);
  return { key: readKeyFile(path), source: path, created };
}

function createKeyFileIfMissing(path: string): boolean {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // 'wx' fails with EEXIST if another process created it first; then we read theirs.
    const fd = openSync(path, 'wx', 0o600);
    try {
      writeSync(fd, `${randomBytes(KEY_BYTES).toString('hex')}\n`);
    } finally {
      closeSync(fd);
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new KeyError('KEY_FILE_IO', `cannot create key file ${path}: ${(err as Error).message}`);
  }
}

function readKeyFile(path: string): Buffer {
  let mode: number;
  let raw: Buffer;
  try {
    mode = statSync(path).mode;
    raw = readFileSync(path);
  } catch (err) {
    throw new KeyError('KEY_FILE_IO', `cannot read key file ${path}: ${(err as Error).message}`);
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0');
    throw new KeyError('KEY_FILE_MODE', `key file ${path} is readable by group or others (mode ${octal}); fix with: chmod 600 ${path}`);
  }
  const key = raw.length === KEY_BYTES ? raw : parseHexKey(raw.toString('latin1'));
  if (!key) {
    throw new KeyError('KEY_FILE_INVALID', `key file ${path} must hold 64 hex characters (32 bytes); restore it from backup or point store.key_file at the right file`);
  }
  return key;
}
