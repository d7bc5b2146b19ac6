/**
 * Bench users: deterministic (same seed -> same names, passwords and TOTP secrets), so the
 * FreeRADIUS users file, our CSV import and the load generator all describe the same people.
 */
import { createHmac } from 'node:crypto';
import { ScureBase32Plugin } from 'otplib';

/** RFC 4648 base32 without padding, as TOTP secrets are written (otplib's, not the server's own). */
export const encodeBase32 = (bytes: Uint8Array) => new ScureBase32Plugin().encode(bytes);

export type BenchUser = {
  name: string;
  /** First-factor password (the TOTP code is appended to it in User-Password). */
  password: string;
  /** TOTP secret, RFC 4648 base32 without padding (20 bytes -> 32 chars). */
  secretBase32: string;
  /** The same secret as raw bytes, for computing codes. */
  key: Buffer;
};

const SEED = 'radius-mfa-bench';

const PASSWORD_ALPHABET = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/**
 * `count` users named u00000, u00001, ...; passwords are 8 characters (or all `sharedPassword`),
 * TOTP secrets 20 bytes.
 */
export function makeUsers(count: number, sharedPassword?: string): BenchUser[] {
  const width = Math.max(5, String(count - 1).length);
  const users: BenchUser[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const name = `u${String(i).padStart(width, '0')}`;
    const key = createHmac('sha256', SEED).update(`totp:${name}`).digest().subarray(0, 20);
    const pwBytes = createHmac('sha256', SEED).update(`pw:${name}`).digest();
    let password = sharedPassword ?? '';
    if (sharedPassword === undefined) for (let j = 0; j < 8; j++) password += PASSWORD_ALPHABET[pwBytes[j]! % PASSWORD_ALPHABET.length];
    users[i] = { name, password, secretBase32: encodeBase32(key), key };
  }
  return users;
}

/** RFC 6238 TOTP with HMAC-SHA1 for one time step; `digits` of the RFC 4226 dynamic truncation. */
export function totpCode(key: Uint8Array, step: number, digits = 6): string {
  const counter = Buffer.alloc(8);
  counter.writeUInt32BE(Math.floor(step / 0x1_0000_0000), 0);
  counter.writeUInt32BE(step >>> 0, 4);
  const mac = createHmac('sha1', key).update(counter).digest();
  // RFC 4226 §5.3: the low 4 bits of the last byte pick the offset of a 31-bit big-endian integer.
  const offset = mac[mac.length - 1]! & 0x0f;
  const bin = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return String(bin).padStart(digits, '0');
}

/** The RFC 6238 time step (T0 = 0, X = 30 s) for a wall-clock time in ms. */
export function totpStep(nowMs: number, period = 30): number {
  return Math.floor(nowMs / 1000 / period);
}

/** CSV for `radius-mfa user import`: username,method,totp_secret,password_hash. */
export function usersCsv(users: BenchUser[], passwordHash: (u: BenchUser) => string = () => ''): string {
  const lines = ['username,method,totp_secret,password_hash'];
  for (const u of users) lines.push(`${u.name},totp,${u.secretBase32},${passwordHash(u)}`);
  return lines.join('\n') + '\n';
}
