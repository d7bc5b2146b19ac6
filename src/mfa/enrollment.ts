// What a TOTP enrollment is, and how a new one is made and shown: the same at every door (portal,
// Mobile App API, CLI). Owned here; the store keeps it (encrypted at rest), flow/second-factor.ts confirms it.
import { randomBytes } from 'node:crypto';
import { encodeBase32 } from './totp-secret.js';

export type TotpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

/** A TOTP enrollment with its secret in the clear (the store encrypts it at rest). */
export interface TotpEnrollment {
  secret: Buffer;
  algorithm: TotpAlgorithm;
  digits: 6 | 8;
  period: number;
}

/** The parameters a new enrollment gets (mfa.totp). */
export type TotpParameters = Omit<TotpEnrollment, 'secret'>;

/** RFC 4226 §4 asks for at least 128 bits; 160 bits is what HMAC-SHA1 uses in full. */
const SECRET_BYTES = 20;

/** A fresh secret with the configured parameters; it counts only once a code made from it is typed back. */
export function newTotpEnrollment(t: TotpParameters): TotpEnrollment {
  return { secret: randomBytes(SECRET_BYTES), algorithm: t.algorithm, digits: t.digits, period: t.period };
}

/** The secret as authenticator apps show and take it (unpadded base32). */
export function secretText(t: TotpEnrollment): string {
  return encodeBase32(t.secret);
}

/** The otpauth:// URI authenticator apps scan; label "issuer:username" (Key Uri Format). */
export async function otpauthUri(issuer: string, username: string, t: TotpEnrollment): Promise<string> {
  // Loaded on use, so that CLI commands without an enrollment do not pay for otplib at start.
  const { generateURI } = await import('otplib');
  return generateURI({ issuer, label: username, secret: secretText(t), algorithm: t.algorithm.toLowerCase() as 'sha1' | 'sha256' | 'sha512', digits: t.digits, period: t.period });
}
