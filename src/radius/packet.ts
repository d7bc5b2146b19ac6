// RADIUS packet codec (RFC 2865 §3, §5). Pure functions over Buffers; knows nothing of users.

export const Code = {
  AccessRequest: 1,
  AccessAccept: 2,
  AccessReject: 3,
  AccountingRequest: 4,
  AccountingResponse: 5,
  AccessChallenge: 11,
  StatusServer: 12,
} as const;

export const Attr = {
  UserName: 1,
  UserPassword: 2,
  ChapPassword: 3,
  NasIpAddress: 4,
  NasPort: 5,
  ReplyMessage: 18,
  State: 24,
  Class: 25,
  VendorSpecific: 26,
  CallingStationId: 31,
  NasIdentifier: 32,
  ProxyState: 33,
  AcctStatusType: 40,
  AcctSessionId: 44,
  EapMessage: 79,
  MessageAuthenticator: 80,
  NasIpv6Address: 95,
} as const;

export const HEADER_LENGTH = 20;
export const MIN_PACKET_LENGTH = 20;
export const MAX_PACKET_LENGTH = 4096;
const KNOWN_CODES = new Set<number>(Object.values(Code));

/** One attribute of a decoded packet. Its value's view is made when asked for: most are never read. */
export class RadiusAttribute {
  constructor(
    private readonly raw: Buffer,
    readonly type: number,
    /** Offset of the attribute's Type octet in the packet. */
    readonly offset: number,
  ) {}

  /** Value bytes (a view into the packet, not a copy). */
  get value(): Buffer {
    return this.raw.subarray(this.offset + 2, this.end);
  }

  /** The value read as UTF-8 text, with no view of it made. */
  text(): string {
    return this.raw.toString('utf8', this.offset + 2, this.end);
  }

  /** Where the value ends: the Length octet counts Type and Length too. */
  private get end(): number {
    return this.offset + this.raw[this.offset + 1]!;
  }
}

export interface RadiusPacket {
  code: number;
  identifier: number;
  /** The packet up to its Length field (bytes past Length are padding, RFC 2865 §3). */
  raw: Buffer;
  authenticator: Buffer;
  attributes: RadiusAttribute[];
  /** Offset of the Message-Authenticator attribute, -1 when absent. */
  messageAuthenticatorOffset: number;
}

export type DecodeResult = { ok: true; packet: RadiusPacket } | { ok: false; reason: string };

/** Parses and validates a datagram; never throws. Malformed packets are reported, to be silently discarded. */
export function decodePacket(datagram: Buffer): DecodeResult {
  if (datagram.length < MIN_PACKET_LENGTH) return { ok: false, reason: 'short_datagram' };
  const length = datagram.readUInt16BE(2);
  // RFC 2865 §3: Length outside 20..4096, or more than was received, is silently discarded.
  if (length < MIN_PACKET_LENGTH || length > MAX_PACKET_LENGTH) return { ok: false, reason: 'bad_length' };
  if (length > datagram.length) return { ok: false, reason: 'truncated' };
  const code = datagram[0]!;
  if (!KNOWN_CODES.has(code)) return { ok: false, reason: 'unknown_code' };
  const raw = length === datagram.length ? datagram : datagram.subarray(0, length);
  const attributes: RadiusAttribute[] = [];
  let messageAuthenticatorOffset = -1;
  let offset = HEADER_LENGTH;
  while (offset < length) {
    if (offset + 2 > length) return { ok: false, reason: 'attribute_overrun' };
    const type = raw[offset]!;
    const attrLength = raw[offset + 1]!;
    // RFC 2865 §5: Length counts Type and Length, so it is at least 2, and must not run past the packet.
    if (attrLength < 2 || offset + attrLength > length) return { ok: false, reason: 'attribute_overrun' };
    if (type === Attr.MessageAuthenticator) {
      // RFC 3579 §3.2: exactly 16 octets, at most one per packet.
      if (attrLength !== 18 || messageAuthenticatorOffset !== -1) return { ok: false, reason: 'bad_message_authenticator' };
      messageAuthenticatorOffset = offset;
    }
    attributes.push(new RadiusAttribute(raw, type, offset));
    offset += attrLength;
  }
  return {
    ok: true,
    packet: {
      code,
      identifier: raw[1]!,
      raw,
      authenticator: raw.subarray(4, 20),
      attributes,
      messageAuthenticatorOffset,
    },
  };
}

/** The first attribute of a type, or undefined. */
export function findAttribute(packet: RadiusPacket, type: number): Buffer | undefined {
  for (const a of packet.attributes) if (a.type === type) return a.value;
  return undefined;
}

/** The first attribute of a type read as UTF-8 text (no view of it made), or undefined. */
export function findText(packet: RadiusPacket, type: number): string | undefined {
  for (const a of packet.attributes) if (a.type === type) return a.text();
  return undefined;
}

/** Encodes one attribute (Type, Length, Value). Values over 253 octets are a caller bug. */
export function encodeAttribute(type: number, value: Buffer | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  if (v.length > 253) throw new RangeError(`attribute ${type} value is ${v.length} octets; at most 253 fit`);
  const out = Buffer.allocUnsafe(v.length + 2);
  out[0] = type;
  out[1] = v.length + 2;
  v.copy(out, 2);
  return out;
}

/** Reply-Message text split over as many attributes as it needs (RFC 2865 §5.18 allows several). */
export function encodeReplyMessage(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 253) parts.push(encodeAttribute(Attr.ReplyMessage, bytes.subarray(i, i + 253)));
  return Buffer.concat(parts);
}
