// RADIUS cryptography: User-Password hiding, authenticators, Message-Authenticator. Pure functions.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { Attr, Code, HEADER_LENGTH, type RadiusPacket } from './packet.js';

const ZERO16 = Buffer.alloc(16);

/**
 * RFC 2865 §5.2: recovers a hidden User-Password. b1 = MD5(S + RA), c1 = p1 XOR b1, bi = MD5(S + c(i-1)).
 * Returns undefined when the hidden value is not 16..128 octets in 16-octet blocks.
 */
export function revealPassword(hidden: Buffer, secret: Buffer, requestAuthenticator: Buffer): Buffer | undefined {
  if (hidden.length < 16 || hidden.length > 128 || hidden.length % 16 !== 0) return undefined;
  const out = Buffer.allocUnsafe(hidden.length);
  let chain = requestAuthenticator;
  for (let i = 0; i < hidden.length; i += 16) {
    const b = createHash('md5').update(secret).update(chain).digest();
    for (let j = 0; j < 16; j++) out[i + j] = hidden[i + j]! ^ b[j]!;
    chain = hidden.subarray(i, i + 16);
  }
  let end = out.length;
  while (end > 0 && out[end - 1] === 0) end--; // the padding is NULs
  return out.subarray(0, end);
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
  // Accounting-Request: the Authenticator is computed over 16 zero octets in its place (RFC 3579 §3.2, RFC 2866).
  const auth = packet.code === Code.AccountingRequest ? ZERO16 : undefined;
  const expected = messageAuthenticatorOf(packet.raw, at, secret, auth);
  return timingSafeEqual(expected, packet.raw.subarray(at + 2, at + 18));
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
  const out = Buffer.allocUnsafe(length);
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
  if (p.withMessageAuthenticator) createHmac('md5', p.secret).update(out).digest().copy(out, HEADER_LENGTH + 2);
  // RFC 2865 §3: Response Authenticator = MD5(Code+ID+Length+RequestAuth+Attributes+Secret).
  createHash('md5').update(out).update(p.secret).digest().copy(out, 4);
  return out;
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
