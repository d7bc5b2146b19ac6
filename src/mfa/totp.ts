// RFC 6238 TOTP over RFC 4226 HOTP. Pure: time is an argument. The per-request check is written here
// because otplib's verifySync costs more per call than the whole rest of the request path (timings:
// docs/performance.md, "Why the crypto is our own"). SHA1 (nearly every token) runs in JS from per-secret HMAC midstates
// (./sha1.ts), SHA256/SHA512 over node:crypto. otplib still makes secrets and otpauth:// URIs, and the
// tests check this code against otplib and the RFC vectors.
import { createHmac } from 'node:crypto';
import type { TotpEnrollment } from './enrollment.js';
import { hmacSha1Key, hotpSha1Binary, type HmacSha1Key } from './sha1.js';

const ALGORITHMS = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' } as const;
const POWERS = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/** Midstates per decrypted secret: the store's user cache keeps the same Buffer while the record is unchanged. */
const sha1Keys = new WeakMap<Buffer, HmacSha1Key>();

/** RFC 4226 §5.3: HMAC over the 8-octet counter, dynamic truncation, modulo 10^digits. */
export function hotp(key: Buffer, counter: number, digits: number, algorithm: TotpEnrollment['algorithm']): string {
  return String(hotpValue(key, counter, digits, algorithm)).padStart(digits, '0');
}

function hotpValue(key: Buffer, counter: number, digits: number, algorithm: TotpEnrollment['algorithm']): number {
  if (algorithm === 'SHA1') {
    let midstates = sha1Keys.get(key);
    if (!midstates) sha1Keys.set(key, (midstates = hmacSha1Key(key)));
    return hotpSha1Binary(midstates, counter) % POWERS[digits]!;
  }
  const msg = Buffer.allocUnsafe(8);
  msg.writeUInt32BE(Math.floor(counter / 0x1_0000_0000), 0);
  msg.writeUInt32BE(counter >>> 0, 4);
  const mac = createHmac(ALGORITHMS[algorithm], key).update(msg).digest();
  const offset = mac[mac.length - 1]! & 0x0f; // the low 4 bits of the last octet
  const binary = ((mac[offset]! & 0x7f) << 24) | (mac[offset + 1]! << 16) | (mac[offset + 2]! << 8) | mac[offset + 3]!;
  return binary % POWERS[digits]!;
}

/** RFC 6238 §4.2: T = floor((now - T0) / X), T0 = 0. */
export function timeStep(nowMs: number, periodSeconds: number): number {
  return Math.floor(nowMs / 1000 / periodSeconds);
}

/**
 * Checks a code against the steps now-window .. now+window (RFC 6238 §5.2 network delay), the
 * current step first: a code typed in time matches it, so one HMAC usually settles the request.
 * Returns the matched time step (to be claimed once against replay), or undefined.
 * Codes are compared as numbers with one XOR (constant time, unlike a string compare that stops at
 * the first differing digit); which step matched is not a secret.
 */
export function verifyTotp(t: TotpEnrollment, code: string, nowMs: number, window: number): number | undefined {
  const given = codeValue(code, t.digits);
  if (given < 0) return undefined;
  const current = timeStep(nowMs, t.period);
  if (matches(t, current, given)) return current;
  for (let d = 1; d <= window; d++) {
    if (current - d >= 0 && matches(t, current - d, given)) return current - d;
    if (matches(t, current + d, given)) return current + d;
  }
  return undefined;
}

/** The code as a number, or -1 unless it is exactly `digits` decimal digits. */
function codeValue(code: string, digits: number): number {
  if (code.length !== digits) return -1;
  let value = 0;
  for (let i = 0; i < digits; i++) {
    const digit = code.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

function matches(t: TotpEnrollment, step: number, given: number): boolean {
  return (hotpValue(t.secret, step, t.digits, t.algorithm) ^ given) === 0;
}
