// Base32 TOTP secrets as admins paste them (RFC 4648 §6 alphabet; spaces, dashes, lower case and
// "=" padding tolerated) -> raw key bytes, with the size rules of RFC 4226 §4.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** RFC 4226 §4 R6: at least 128 bits; 160 recommended. */
export const MIN_SECRET_BYTES = 16;
/** Older systems (Google Authenticator's 16-character secrets) used 80 bits: accepted with a warning. */
export const LEGACY_MIN_SECRET_BYTES = 10;
export const MAX_SECRET_BYTES = 64;

export type SecretParse = { ok: true; secret: Buffer; warning?: string } | { ok: false; problem: string };

/** Decodes and size-checks a base32 secret. */
export function parseBase32Secret(text: string): SecretParse {
  const clean = text.replace(/[\s-]/g, '').toUpperCase().replace(/=+$/, '');
  if (clean === '') return { ok: false, problem: 'empty secret' };
  const bad = [...clean].find((c) => !ALPHABET.includes(c));
  if (bad !== undefined) return { ok: false, problem: `${JSON.stringify(bad)} is not a base32 character (A-Z, 2-7)` };
  // 5 bits per character: lengths of 1, 3 or 6 (mod 8) cannot end on a whole byte.
  if ([1, 3, 6].includes(clean.length % 8)) return { ok: false, problem: `a base32 text of ${clean.length} characters is truncated` };
  const secret = decodeBase32(clean);
  if (secret.length < LEGACY_MIN_SECRET_BYTES) {
    return { ok: false, problem: `decodes to ${secret.length} bytes; at least ${MIN_SECRET_BYTES} are needed (${LEGACY_MIN_SECRET_BYTES} for legacy secrets)` };
  }
  if (secret.length > MAX_SECRET_BYTES) return { ok: false, problem: `decodes to ${secret.length} bytes; at most ${MAX_SECRET_BYTES} are allowed` };
  if (secret.length < MIN_SECRET_BYTES) {
    return { ok: true, secret, warning: `legacy ${secret.length}-byte secret accepted; RFC 4226 asks for at least ${MIN_SECRET_BYTES} bytes, re-enroll when convenient` };
  }
  return { ok: true, secret };
}

function decodeBase32(clean: string): Buffer {
  const out = Buffer.alloc(Math.floor((clean.length * 5) / 8));
  let bits = 0;
  let value = 0;
  let o = 0;
  for (const c of clean) {
    value = ((value << 5) | ALPHABET.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (value >>> bits) & 0xff;
    }
  }
  return out;
}

/** Raw key bytes -> unpadded base32, the form otpauth:// URIs carry. */
export function encodeBase32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = ((value << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(value >>> bits) & 31];
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}
