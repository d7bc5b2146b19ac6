// Signed Access-Requests and verified replies, from src/radius's codec and crypto, for the tests
// (through test/helpers/udp.ts).
import { createHmac, randomBytes } from 'node:crypto';
import { hidePassword, verifyResponse } from '../../src/radius/crypto.js';
import { Attr, Code, decodePacket, encodeAttribute, HEADER_LENGTH, type RadiusPacket } from '../../src/radius/packet.js';

export interface AccessRequestParts {
  secret: string | Buffer;
  identifier?: number;
  authenticator?: Buffer;
  userName?: string;
  /** PAP password, hidden per RFC 2865 §5.2 with the secret and authenticator. */
  password?: string | Buffer;
  /** Extra attributes in order, after User-Name and User-Password. */
  attributes?: readonly [type: number, value: Buffer | string][];
  /** Add and compute Message-Authenticator (last attribute). Default true. */
  messageAuthenticator?: boolean;
}

/** Encodes a signed Access-Request. */
export function buildAccessRequest(p: AccessRequestParts): Buffer {
  const secret = Buffer.isBuffer(p.secret) ? p.secret : Buffer.from(p.secret, 'utf8');
  const authenticator = p.authenticator ?? randomBytes(16);
  const attrs: Buffer[] = [];
  if (p.userName !== undefined) attrs.push(encodeAttribute(Attr.UserName, p.userName));
  if (p.password !== undefined) {
    const pw = Buffer.isBuffer(p.password) ? p.password : Buffer.from(p.password, 'utf8');
    attrs.push(encodeAttribute(Attr.UserPassword, hidePassword(pw, secret, authenticator)));
  }
  for (const [type, value] of p.attributes ?? []) attrs.push(encodeAttribute(type, value));
  const withMa = p.messageAuthenticator ?? true;
  if (withMa) attrs.push(encodeAttribute(Attr.MessageAuthenticator, Buffer.alloc(16)));
  const body = Buffer.concat(attrs);
  const out = Buffer.alloc(HEADER_LENGTH + body.length);
  out[0] = Code.AccessRequest;
  out[1] = p.identifier ?? randomBytes(1)[0]!;
  out.writeUInt16BE(out.length, 2);
  authenticator.copy(out, 4);
  body.copy(out, HEADER_LENGTH);
  if (withMa) signMessageAuthenticator(out, out.length - 18, secret);
  return out;
}

/** RFC 3579 §3.2 (request side): HMAC-MD5 over the packet with the Message-Authenticator value zeroed, written in place. */
export function signMessageAuthenticator(packet: Buffer, offset: number, secret: Buffer): void {
  packet.fill(0, offset + 2, offset + 18);
  createHmac('md5', secret).update(packet).digest().copy(packet, offset + 2);
}

export interface DecodedReply {
  packet: RadiusPacket;
  /** Response Authenticator and Message-Authenticator both verify against the request and secret. */
  verified: boolean;
}

export function decodeReply(bytes: Buffer, request: Buffer, secret: string | Buffer): DecodedReply {
  const r = decodePacket(bytes);
  if (!r.ok) throw new Error(`reply does not decode: ${r.reason}`);
  const s = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8');
  return { packet: r.packet, verified: verifyResponse(r.packet, request.subarray(4, 20), s) };
}
