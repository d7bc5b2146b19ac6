// RADIUS cryptography: User-Password hiding, authenticators, Message-Authenticator. Pure functions.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { hmacMd5, hmacMd5Key, md5, type HmacMd5Key } from './md5.js';
import { Attr, Code, HEADER_LENGTH, type RadiusPacket } from './packet.js';

const ZERO16 = Buffer.alloc(16);
/** An MD5 result used and done within one call (single-threaded). */
const DIGEST = Buffer.alloc(16);

/** HMAC keys are derived once per shared secret (the secret Buffers live as long as their config). */
const hmacKeys = new WeakMap<Buffer, HmacMd5Key>();
function hmacKeyOf(secret: Buffer): HmacMd5Key {
  let key = hmacKeys.get(secret);
  if (!key) hmacKeys.set(secret, (key = hmacMd5Key(secret)));
  return key;
}

let scratch = Buffer.alloc(256);
/** A reusable buffer of at least n bytes (single-threaded: used and done within one call). */
function scratchOf(n: number): Buffer {
  if (scratch.length < n) scratch = Buffer.alloc(n * 2);
  return scratch;
}

/** Zeroes bytes [from, to) that held a secret (a loop: for a few dozen bytes, fill() is a costlier call into C++). */
function wipe(bytes: Uint8Array, from: number, to: number): void {
  for (let i = from; i < to; i++) bytes[i] = 0;
}

/**
 * RFC 2865 §5.2: recovers a hidden User-Password. b1 = MD5(S + RA), c1 = p1 XOR b1, bi = MD5(S + c(i-1)).
 * Returns undefined when the hidden value is not 16..128 octets in 16-octet blocks.
 * Per request: the blocks are worked in the scratch buffer (no view per block) and wiped after.
 */
export function revealPassword(hidden: Buffer, secret: Buffer, requestAuthenticator: Buffer): Buffer | undefined {
  const n = hidden.length;
  if (n < 16 || n > 128 || n % 16 !== 0) return undefined;
  // scratch: the secret, the chained block, then the plaintext.
  const chainAt = secret.length;
  const plainAt = chainAt + 16;
  const work = scratchOf(plainAt + n);
  secret.copy(work, 0);
  for (let i = 0; i < n; i += 16) {
    const chain = i === 0 ? requestAuthenticator : hidden;
    const from = i === 0 ? 0 : i - 16;
    for (let j = 0; j < 16; j++) work[chainAt + j] = chain[from + j]!;
    md5(work, 0, plainAt, DIGEST, 0);
    for (let j = 0; j < 16; j++) work[plainAt + i + j] = hidden[i + j]! ^ DIGEST[j]!;
  }
  let end = n;
  while (end > 0 && work[plainAt + end - 1] === 0) end--; // the padding is NULs
  const out = Buffer.allocUnsafe(end);
  for (let i = 0; i < end; i++) out[i] = work[plainAt + i]!;
  wipe(work, 0, plainAt + n);
  wipe(DIGEST, 0, 16);
  return out;
}

/** RFC 2865 §5.2, the sending side (upstream client, tests). Passwords over 128 octets are a caller bug. */
export function hidePassword(password: Buffer, secret: Buffer, requestAuthenticator: Buffer): Buffer {
  const padded = Buffer.alloc(Math.max(16, Math.ceil(password.length / 16) * 16));
  if (padded.length > 128) throw new RangeError('User-Password is limited to 128 octets');
  password.copy(padded);
  let chain = requestAuthenticator;
  for (let i = 0; i < padded.length; i += 16) {
    const b = createHash('md5').update(secret).update(chain).digest();
    for (let j = 0; j < 16; j++) padded[i + j] = padded[i + j]! ^ b[j]!;
    chain = padded.subarray(i, i + 16);
  }
  return padded;
}

/** RFC 3579 §3.2: HMAC-MD5 over the packet with the Message-Authenticator value taken as 16 zero octets. */
function messageAuthenticatorOf(raw: Buffer, maOffset: number, secret: Buffer, authenticator?: Buffer): Buffer {
  const h = createHmac('md5', secret);
  if (authenticator) {
    h.update(raw.subarray(0, 4)).update(authenticator).update(raw.subarray(HEADER_LENGTH, maOffset + 2));
  } else {
    h.update(raw.subarray(0, maOffset + 2));
  }
  return h.update(ZERO16).update(raw.subarray(maOffset + 18)).digest();
}

/** Checks a request's Message-Authenticator in constant time. False when absent. */
export function verifyRequestMessageAuthenticator(packet: RadiusPacket, secret: Buffer): boolean {
  const at = packet.messageAuthenticatorOffset;
  if (at < 0) return false;
  const raw = packet.raw;
  const copy = scratchOf(raw.length);
  raw.copy(copy, 0);
  ZERO16.copy(copy, at + 2);
  // Accounting-Request: the Authenticator is computed over 16 zero octets in its place (RFC 3579 §3.2, RFC 2866).
  if (packet.code === Code.AccountingRequest) ZERO16.copy(copy, 4);
  hmacMd5(hmacKeyOf(secret), copy, 0, raw.length, DIGEST, 0);
  return equal16(DIGEST, raw, at + 2);
}

/**
 * The 16 octets of `a` equal those of `b` at `at`, in constant time: every octet is compared, with no
 * early exit (as crypto.timingSafeEqual, without two views and a call into C++ per request).
 */
function equal16(a: Uint8Array, b: Uint8Array, at: number): boolean {
  let differ = 0;
  for (let i = 0; i < 16; i++) differ |= a[i]! ^ b[at + i]!;
  return differ === 0;
}

/** RFC 2866 §3: Accounting-Request Authenticator = MD5(Code+ID+Length+16 zero octets+Attributes+Secret). */
export function verifyAccountingRequestAuthenticator(packet: RadiusPacket, secret: Buffer): boolean {
  const raw = packet.raw;
  const expected = createHash('md5').update(raw.subarray(0, 4)).update(ZERO16).update(raw.subarray(HEADER_LENGTH)).update(secret).digest();
  return timingSafeEqual(expected, packet.authenticator);
}

export interface ResponseParts {
  code: number;
  identifier: number;
  requestAuthenticator: Buffer;
  /** Encoded attributes to send after Message-Authenticator. */
  attributes: Buffer;
  /** Proxy-State attributes of the request, encoded, copied unchanged and in order (RFC 2865 §5.33). */
  proxyStates: readonly Buffer[];
  secret: Buffer;
  /** Access-* replies carry Message-Authenticator first (BlastRADIUS); Accounting-Response does not need it. */
  withMessageAuthenticator: boolean;
}

/** Encodes a signed response: Message-Authenticator (first), then the Response Authenticator over the final bytes. */
export function encodeResponse(p: ResponseParts): Buffer {
  let length = HEADER_LENGTH + (p.withMessageAuthenticator ? 18 : 0) + p.attributes.length;
  for (const ps of p.proxyStates) length += ps.length;
  if (length > 4096) throw new RangeError(`reply would be ${length} octets; RADIUS allows 4096`);
  // Room for the secret after the packet: the Response Authenticator is MD5 over both, in one pass.
  const out = Buffer.allocUnsafe(length + p.secret.length);
  out[0] = p.code;
  out[1] = p.identifier;
  out.writeUInt16BE(length, 2);
  p.requestAuthenticator.copy(out, 4);
  let at = HEADER_LENGTH;
  if (p.withMessageAuthenticator) {
    out[at] = Attr.MessageAuthenticator;
    out[at + 1] = 18;
    ZERO16.copy(out, at + 2);
    at += 18;
  }
  at += p.attributes.copy(out, at);
  for (const ps of p.proxyStates) at += ps.copy(out, at);
  // RFC 3579 §3.2: the response's Message-Authenticator is computed with the Request Authenticator in place.
  if (p.withMessageAuthenticator) hmacMd5(hmacKeyOf(p.secret), out, 0, length, out, HEADER_LENGTH + 2);
  // RFC 2865 §3: Response Authenticator = MD5(Code+ID+Length+RequestAuth+Attributes+Secret).
  p.secret.copy(out, length);
  md5(out, 0, length + p.secret.length, out, 4);
  wipe(out, length, out.length);
  return out.subarray(0, length);
}

/** Client side (tests, upstream): checks a response's authenticator and, if present, its Message-Authenticator. */
export function verifyResponse(response: RadiusPacket, requestAuthenticator: Buffer, secret: Buffer): boolean {
  const raw = response.raw;
  const expected = createHash('md5').update(raw.subarray(0, 4)).update(requestAuthenticator).update(raw.subarray(HEADER_LENGTH)).update(secret).digest();
  if (!timingSafeEqual(expected, response.authenticator)) return false;
  const at = response.messageAuthenticatorOffset;
  if (at < 0) return true;
  const ma = messageAuthenticatorOf(raw, at, secret, requestAuthenticator);
  return timingSafeEqual(ma, raw.subarray(at + 2, at + 18));
}

/** RFC 2865 §5.2 chain without NUL trimming (RFC 2548 §2.4.1 MS-CHAP-MPPE-Keys are binary). */
export function revealPasswordBlocks(hidden: Buffer, secret: Buffer, requestAuthenticator: Buffer): Buffer | undefined {
  if (hidden.length < 16 || hidden.length > 128 || hidden.length % 16 !== 0) return undefined;
  const out = Buffer.allocUnsafe(hidden.length);
  let chain = requestAuthenticator;
  for (let i = 0; i < hidden.length; i += 16) {
    const b = createHash('md5').update(secret).update(chain).digest();
    for (let j = 0; j < 16; j++) out[i + j] = hidden[i + j]! ^ b[j]!;
    chain = hidden.subarray(i, i + 16);
  }
  return out;
}

/**
 * RFC 2548 §2.4.2-2.4.3 (MS-MPPE-Send-Key / Recv-Key) and RFC 2868 §3.5 (Tunnel-Password): `salted` is
 * Salt (2 octets) + String; P = Length (1 octet) + data + padding, b(1) = MD5(S + R + Salt),
 * b(i) = MD5(S + c(i-1)). Returns the data, or undefined when the length octet does not fit.
 */
export function revealSalted(salted: Buffer, secret: Buffer, requestAuthenticator: Buffer): Buffer | undefined {
  const hidden = salted.subarray(2);
  if (salted.length < 2 || hidden.length < 16 || hidden.length % 16 !== 0) return undefined;
  const plain = Buffer.allocUnsafe(hidden.length);
  let b = createHash('md5').update(secret).update(requestAuthenticator).update(salted.subarray(0, 2)).digest();
  for (let i = 0; i < hidden.length; i += 16) {
    for (let j = 0; j < 16; j++) plain[i + j] = hidden[i + j]! ^ b[j]!;
    b = createHash('md5').update(secret).update(hidden.subarray(i, i + 16)).digest();
  }
  const length = plain[0]!;
  if (length > plain.length - 1) return undefined;
  return plain.subarray(1, 1 + length);
}

/** The sending side of revealSalted: Salt (its high bit set by the caller, RFC 2868 §3.5) + String. */
export function hideSalted(data: Buffer, secret: Buffer, requestAuthenticator: Buffer, salt: Buffer): Buffer {
  if (data.length > 239) throw new RangeError('a salted attribute holds at most 239 octets of data');
  const plain = Buffer.alloc(Math.ceil((data.length + 1) / 16) * 16);
  plain[0] = data.length;
  data.copy(plain, 1);
  const out = Buffer.allocUnsafe(2 + plain.length);
  salt.copy(out, 0, 0, 2);
  let b = createHash('md5').update(secret).update(requestAuthenticator).update(salt.subarray(0, 2)).digest();
  for (let i = 0; i < plain.length; i += 16) {
    for (let j = 0; j < 16; j++) out[2 + i + j] = plain[i + j]! ^ b[j]!;
    b = createHash('md5').update(secret).update(out.subarray(2 + i, 2 + i + 16)).digest();
  }
  return out;
}
