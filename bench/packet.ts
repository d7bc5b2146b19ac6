// The few RADIUS encodings the bench needs, written for speed over preallocated buffers:
// Access-Request with Message-Authenticator first (RFC 3579 §3.2), User-Password hiding
// (RFC 2865 §5.2), Response Authenticator (RFC 2865 §3) and reply Message-Authenticator checks.
// No allocation per packet; module-level scratch buffers (single-threaded use only).
import { hmacMd5, md5, type HmacMd5Key } from '../src/radius/md5.js';

export const CODE = { AccessRequest: 1, AccessAccept: 2, AccessReject: 3, StatusServer: 12 } as const;
const ATTR = { UserName: 1, UserPassword: 2, CallingStationId: 31, NasIdentifier: 32, MessageAuthenticator: 80 } as const;

const MAX_PACKET = 4096;
let scratch = new Uint8Array(MAX_PACKET + 64);
const hashOut = new Uint8Array(16);

function scratchFor(n: number): Uint8Array {
  if (scratch.length < n) scratch = new Uint8Array(n);
  return scratch;
}

/**
 * RFC 2865 §5.2 in place: buf[off..off+len) holds the NUL-padded password (len a multiple of 16);
 * b1 = MD5(S + RA), c1 = p1 XOR b1, bi = MD5(S + c(i-1)).
 */
export function hideInPlace(buf: Uint8Array, off: number, len: number, secret: Uint8Array, ra: Uint8Array, raOff: number): void {
  const s = scratchFor(secret.length + 16);
  s.set(secret, 0);
  s.set(ra.subarray(raOff, raOff + 16), secret.length);
  for (let p = off; p < off + len; p += 16) {
    md5(s, 0, secret.length + 16, hashOut, 0);
    for (let i = 0; i < 16; i++) buf[p + i] = buf[p + i]! ^ hashOut[i]!;
    s.set(buf.subarray(p, p + 16), secret.length);
  }
}

/** Writes attribute `type` with `value` at buf[p..); returns the offset after it. */
function putAttr(buf: Uint8Array, p: number, type: number, value: Uint8Array): number {
  buf[p] = type;
  buf[p + 1] = value.length + 2;
  buf.set(value, p + 2);
  return p + value.length + 2;
}

/**
 * Writes a complete Access-Request into buf[0..) and returns its length. The Request
 * Authenticator must already be in buf[4..20). Attribute order: Message-Authenticator (first,
 * BlastRADIUS guidance), User-Name, User-Password = pwHead + pwTail hidden, NAS-Identifier,
 * Calling-Station-Id (if given).
 */
export function writeAccessRequest(
  buf: Uint8Array, id: number, userName: Uint8Array, pwHead: Uint8Array, pwTail: Uint8Array,
  nasIdentifier: Uint8Array, secret: Uint8Array, maKey: HmacMd5Key, callingStation?: Uint8Array,
): number {
  buf[0] = CODE.AccessRequest;
  buf[1] = id;
  let p = 20;
  buf[p] = ATTR.MessageAuthenticator;
  buf[p + 1] = 18;
  buf.fill(0, p + 2, p + 18);
  p = putAttr(buf, p + 18, ATTR.UserName, userName);
  const pwLen = pwHead.length + pwTail.length;
  const hiddenLen = Math.max(16, Math.ceil(pwLen / 16) * 16);
  buf[p] = ATTR.UserPassword;
  buf[p + 1] = hiddenLen + 2;
  buf.fill(0, p + 2, p + 2 + hiddenLen);
  buf.set(pwHead, p + 2);
  buf.set(pwTail, p + 2 + pwHead.length);
  hideInPlace(buf, p + 2, hiddenLen, secret, buf, 4);
  p = putAttr(buf, p + hiddenLen + 2, ATTR.NasIdentifier, nasIdentifier);
  if (callingStation) p = putAttr(buf, p, ATTR.CallingStationId, callingStation);
  buf[2] = p >>> 8;
  buf[3] = p & 0xff;
  // RFC 3579 §3.2: HMAC-MD5 over the whole packet with the Message-Authenticator value zeroed.
  hmacMd5(maKey, buf, 0, p, buf, 22);
  return p;
}

/** Writes a Status-Server (RFC 5997) with only a Message-Authenticator, zeroed then signed; RA must be in buf[4..20). */
export function writeStatusServer(buf: Uint8Array, id: number, maKey: HmacMd5Key): number {
  buf.set([CODE.StatusServer, id, 0, 38], 0);
  buf.set([ATTR.MessageAuthenticator, 18], 20);
  buf.fill(0, 22, 38);
  hmacMd5(maKey, buf, 0, 38, buf, 22);
  return 38;
}

/** Length from the header if the datagram is a well-formed RADIUS packet, else -1. */
export function packetLength(msg: Uint8Array): number {
  if (msg.length < 20) return -1;
  const len = (msg[2]! << 8) | msg[3]!;
  if (len < 20 || len > msg.length || len > MAX_PACKET) return -1;
  return len;
}

/** RFC 2865 §3: reply authenticator == MD5(Code|ID|Length|RequestAuth|Attributes|Secret). */
export function verifyResponseAuthenticator(msg: Uint8Array, len: number, reqAuth: Uint8Array, raOff: number, secret: Uint8Array): boolean {
  const s = scratchFor(len + secret.length);
  s.set(msg.subarray(0, len), 0);
  s.set(reqAuth.subarray(raOff, raOff + 16), 4);
  s.set(secret, len);
  md5(s, 0, len + secret.length, hashOut, 0);
  for (let i = 0; i < 16; i++) if (hashOut[i] !== msg[4 + i]) return false;
  return true;
}

/** What checkReplyMessageAuthenticator found: the load generator counts them in this order. */
const [MA_FIRST, MA_NOT_FIRST, MA_MISSING, MA_BAD, MA_MALFORMED] = [0, 1, 2, 3, 4];

/** RFC 3579 §3.2 on a reply, returns 0 first, 1 not first, 2 missing, 3 bad, 4 malformed: HMAC over the reply with the Request Authenticator in the header and the MA value zeroed. */
export function checkReplyMessageAuthenticator(msg: Uint8Array, len: number, reqAuth: Uint8Array, raOff: number, maKey: HmacMd5Key): number {
  let p = 20;
  let at = -1;
  while (p < len) {
    if (p + 2 > len) return MA_MALFORMED;
    const alen = msg[p + 1]!;
    if (alen < 2 || p + alen > len) return MA_MALFORMED;
    if (msg[p] === ATTR.MessageAuthenticator) {
      if (alen !== 18) return MA_MALFORMED;
      at = p;
      break;
    }
    p += alen;
  }
  if (at < 0) return MA_MISSING;
  const s = scratchFor(len);
  s.set(msg.subarray(0, len), 0);
  s.set(reqAuth.subarray(raOff, raOff + 16), 4);
  s.fill(0, at + 2, at + 18);
  hmacMd5(maKey, s, 0, len, hashOut, 0);
  for (let i = 0; i < 16; i++) if (hashOut[i] !== msg[at + 2 + i]) return MA_BAD;
  return at === 20 ? MA_FIRST : MA_NOT_FIRST;
}
