// Bench users: deterministic (same seed -> same names, passwords and TOTP secrets), so the
// FreeRADIUS users file, our CSV import and the load generator all describe the same people.
import { createHmac } from 'node:crypto';
import { hotp, timeStep } from '../src/mfa/totp.js';
import { encodeBase32 } from '../src/mfa/totp-secret.js';

export type BenchUser = ReturnType<typeof makeUsers>[number];

const SEED = 'radius-mfa-bench';
const PASSWORD_ALPHABET = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/**
 * `count` users named u00000, u00001, ...: a first-factor password of 8 characters (or all
 * `sharedPassword`; the TOTP code is appended to it in User-Password), and a 20-byte TOTP secret as
 * `key` and as `secretBase32` (RFC 4648, no padding).
 */
export function makeUsers(count: number, sharedPassword?: string) {
  const width = Math.max(5, String(count - 1).length);
  return Array.from({ length: count }, (_, i) => {
    const name = `u${String(i).padStart(width, '0')}`;
    const key = createHmac('sha256', SEED).update(`totp:${name}`).digest().subarray(0, 20);
    const pwBytes = createHmac('sha256', SEED).update(`pw:${name}`).digest().subarray(0, 8);
    const password = sharedPassword ?? Array.from(pwBytes, (b) => PASSWORD_ALPHABET[b % PASSWORD_ALPHABET.length]).join('');
    return { name, password, secretBase32: encodeBase32(key), key };
  });
}

// The server's own RFC 6238 code (test/totp.test.ts checks it against the RFC vectors and otplib): the
// server reads what the bench sends, and FreeRADIUS's rlm_totp checks the same codes independently.
/** The current 30 s TOTP time step. */
export const totpStep = () => timeStep(Date.now(), 30);
/** A user's 6-digit SHA1 code for `step` (default: now). */
export const totpCode = (key: Buffer, step = totpStep()) => hotp(key, step, 6, 'SHA1');
