// The proxy pass, both ways: which of the NAS's attributes go into the upstream request, and the
// upstream reply's hidden attributes re-hidden for the NAS (OpenBSD radiusd's "response fixup").
// Pure functions over packets; knows nothing of users.
import { revealSalted, hideSalted, revealPasswordBlocks, hidePassword } from './crypto.js';
import type { AttributeKey } from './dictionary.js';
import { Attr, RadiusAttribute, type RadiusPacket } from './packet.js';

export const VENDOR_MICROSOFT = 311;
/** RFC 2548 vendor types. */
export const Ms = {
  ChapResponse: 1,
  ChapError: 2,
  ChapMppeKeys: 12,
  ChapChallenge: 11,
  MppeSendKey: 16,
  MppeRecvKey: 17,
  Chap2Response: 25,
  Chap2Success: 26,
} as const;
export const TUNNEL_PASSWORD = 69;
const CHAP_CHALLENGE = 60;

/**
 * RFC 2865 §5: what a NAS says about itself and the session. NPS network policies match on these
 * (NAS-Port-Type, Called-Station-Id, ...), so a proxy that drops them breaks the upstream's policy.
 */
const NAS_ATTRIBUTES: ReadonlySet<number> = new Set([
  Attr.NasIpAddress,
  5, // NAS-Port
  6, // Service-Type
  7, // Framed-Protocol
  30, // Called-Station-Id
  Attr.CallingStationId,
  Attr.NasIdentifier,
  61, // NAS-Port-Type
  87, // NAS-Port-Id
  Attr.NasIpv6Address,
  Attr.VendorSpecific,
]);

/** Never copied upstream: recomputed per hop (RFC 3579 §3.2, RFC 2865 §5.33) or hidden with the NAS's secret. */
const HOP_BY_HOP: ReadonlySet<number> = new Set([Attr.MessageAuthenticator, Attr.ProxyState, Attr.UserPassword, TUNNEL_PASSWORD]);

export function vendorOf(a: RadiusAttribute): { vendor: number; vendorType: number } | undefined {
  // RFC 2865 §5.26: Vendor-Id (4 octets), then the vendor's own Type and Length.
  if (a.type !== Attr.VendorSpecific) return undefined;
  const value = a.value;
  return value.length < 6 ? undefined : { vendor: value.readUInt32BE(0), vendorType: value[4]! };
}

export function matchesKey(keys: readonly AttributeKey[], a: RadiusAttribute): boolean {
  if (keys.length === 0) return false;
  const v = vendorOf(a);
  return keys.some((k) => (k.vendor === undefined ? k.type === a.type : v !== undefined && k.vendor === v.vendor && k.type === v.vendorType));
}

function raw(packet: RadiusPacket, a: RadiusAttribute): Buffer {
  return packet.raw.subarray(a.offset, a.offset + a.value.length + 2);
}

/** The NAS's own attributes (see NAS_ATTRIBUTES) for the upstream request, in order, minus `drop`. */
export function nasAttributesOf(packet: RadiusPacket, drop: readonly AttributeKey[]): Buffer[] {
  const out: Buffer[] = [];
  for (const a of packet.attributes) if (NAS_ATTRIBUTES.has(a.type) && !matchesKey(drop, a)) out.push(raw(packet, a));
  return out;
}

/**
 * A non-PAP request as it goes upstream: every attribute in order (EAP-Message fragments stay in their
 * order, RFC 3579 §3.1), less the hop-by-hop ones and `drop`. CHAP without CHAP-Challenge used the NAS's
 * Request Authenticator as the challenge (RFC 2865 §5.3); ours differs, so it is sent as CHAP-Challenge.
 */
export function relayedAttributesOf(packet: RadiusPacket, drop: readonly AttributeKey[]): Buffer[] {
  const out: Buffer[] = [];
  let chap = false;
  let chapChallenge = false;
  for (const a of packet.attributes) {
    if (a.type === Attr.ChapPassword) chap = true;
    if (a.type === CHAP_CHALLENGE) chapChallenge = true;
    if (HOP_BY_HOP.has(a.type) || (NAS_ATTRIBUTES.has(a.type) && matchesKey(drop, a))) continue;
    out.push(raw(packet, a));
  }
  if (chap && !chapChallenge) out.push(Buffer.concat([Buffer.from([CHAP_CHALLENGE, 18]), packet.authenticator]));
  return out;
}

/** The two ends of a hidden attribute's trip: who hid it (upstream) and who must read it (the NAS). */
export interface RehideKeys {
  fromSecret: Buffer;
  fromAuthenticator: Buffer;
  toSecret: Buffer;
  toAuthenticator: Buffer;
  /** Randomness as an argument: n octets. */
  random: (n: number) => Buffer;
}

/** Whether the attribute is hidden with the secret and Request Authenticator (and so must be re-hidden). */
export function isHidden(a: RadiusAttribute): boolean {
  if (a.type === TUNNEL_PASSWORD) return true;
  const v = vendorOf(a);
  return v?.vendor === VENDOR_MICROSOFT && (v.vendorType === Ms.MppeSendKey || v.vendorType === Ms.MppeRecvKey || v.vendorType === Ms.ChapMppeKeys);
}

/**
 * The attribute re-hidden for the NAS, encoded; undefined when it does not decrypt (wrong length or
 * padding): such a key would only fail later, at the tunnel.
 */
export function rehide(a: RadiusAttribute, k: RehideKeys): Buffer | undefined {
  if (a.type === TUNNEL_PASSWORD) {
    // RFC 2868 §3.5: Tag (1), Salt (2), then the salted string.
    if (a.value.length < 3) return undefined;
    const plain = revealSalted(a.value.subarray(1), k.fromSecret, k.fromAuthenticator);
    if (!plain) return undefined;
    return attribute(a.type, Buffer.concat([a.value.subarray(0, 1), hideSalted(plain, k.toSecret, k.toAuthenticator, salt(k))]));
  }
  const v = vendorOf(a)!;
  const length = a.value[5]!;
  if (length !== a.value.length - 4) return undefined; // one sub-attribute filling the VSA
  const data = a.value.subarray(6);
  let hidden: Buffer | undefined;
  if (v.vendorType === Ms.ChapMppeKeys) {
    // RFC 2548 §2.4.1: 32 octets hidden as a User-Password (RFC 2865 §5.2), without NUL trimming.
    const plain = revealPasswordBlocks(data, k.fromSecret, k.fromAuthenticator);
    hidden = plain && hidePassword(plain, k.toSecret, k.toAuthenticator);
  } else {
    // RFC 2548 §2.4.2-3: Salt (2), then the salted Key-Length + Key.
    const plain = revealSalted(data, k.fromSecret, k.fromAuthenticator);
    hidden = plain && hideSalted(plain, k.toSecret, k.toAuthenticator, salt(k));
  }
  if (!hidden) return undefined;
  const vsa = Buffer.alloc(6 + hidden.length);
  a.value.copy(vsa, 0, 0, 5);
  vsa[5] = hidden.length + 2;
  hidden.copy(vsa, 6);
  return attribute(Attr.VendorSpecific, vsa);
}

/** RFC 2548 §2.4.2 / RFC 2868 §3.5: the Salt's most significant bit is set. */
function salt(k: RehideKeys): Buffer {
  const s = k.random(2);
  s[0] = s[0]! | 0x80;
  return s;
}

function attribute(type: number, value: Buffer): Buffer | undefined {
  if (value.length > 253) return undefined;
  return Buffer.concat([Buffer.from([type, value.length + 2]), value]);
}

export type NonPapKind = 'eap' | 'mschapv2' | 'mschap' | 'chap';

/** How a request without User-Password authenticates; undefined when it carries nothing we can relay. */
export function nonPapKindOf(packet: RadiusPacket): NonPapKind | undefined {
  let kind: NonPapKind | undefined;
  for (const a of packet.attributes) {
    if (a.type === Attr.EapMessage) return 'eap';
    if (a.type === Attr.ChapPassword) kind ??= 'chap';
    const v = vendorOf(a);
    if (v?.vendor === VENDOR_MICROSOFT && v.vendorType === Ms.Chap2Response) kind = 'mschapv2';
    else if (v?.vendor === VENDOR_MICROSOFT && v.vendorType === Ms.ChapResponse && kind !== 'mschapv2') kind = 'mschap';
  }
  return kind;
}

/** The value of the first attribute of `type` in encoded attributes, or undefined (malformed: undefined). */
/**
 * Every hidden attribute of an encoded list re-hidden (see rehide); the rest copied as they are. For an
 * Accept that answers a later request than the one the hiding was done for (after an Access-Challenge).
 */
export function rehideAll(attributes: Buffer, k: RehideKeys): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at + 2 <= attributes.length; ) {
    const length = attributes[at + 1]!;
    if (length < 2 || at + length > attributes.length) break;
    const a = new RadiusAttribute(attributes, attributes[at]!, at);
    if (!isHidden(a)) out.push(attributes.subarray(at, at + length));
    else {
      const again = rehide(a, k);
      if (again) out.push(again);
    }
    at += length;
  }
  return Buffer.concat(out);
}

export function findInAttributes(attributes: Buffer, type: number): Buffer | undefined {
  for (let at = 0; at + 2 <= attributes.length; ) {
    const length = attributes[at + 1]!;
    if (length < 2 || at + length > attributes.length) return undefined;
    if (attributes[at] === type) return attributes.subarray(at + 2, at + length);
    at += length;
  }
  return undefined;
}

/**
 * What tells the NAS's peer that it failed, for an Access-Reject we make ourselves (RFC 3579 §2.6.3:
 * EAP-Failure; RFC 2548 §2.1.5 / RFC 2759 §6: MS-CHAP-Error "E=691"). `eapIdentifier`: that of the
 * upstream's EAP-Success this reject replaces, else the request's EAP-Response (RFC 3748 §4.2).
 */
export function refusalAttributes(request: RadiusPacket, eapIdentifier?: number): Buffer {
  const kind = nonPapKindOf(request);
  if (kind === 'eap') {
    const id = eapIdentifier ?? findInAttributes(request.raw.subarray(20), Attr.EapMessage)?.[1] ?? 0;
    return Buffer.from([Attr.EapMessage, 6, 4, id, 0, 4]);
  }
  if (kind !== 'mschap' && kind !== 'mschapv2') return Buffer.alloc(0);
  let ident = 0;
  let challenge: Buffer | undefined;
  for (const a of request.attributes) {
    const v = vendorOf(a);
    if (v?.vendor !== VENDOR_MICROSOFT) continue;
    if ((v.vendorType === Ms.Chap2Response || v.vendorType === Ms.ChapResponse) && a.value.length > 6) ident = a.value[6]!;
    if (v.vendorType === Ms.ChapChallenge) challenge = a.value.subarray(6);
  }
  // RFC 2759 §6: "E=691 R=0 C=<challenge> V=3" (no retry; 691 = authentication failure).
  const text = kind === 'mschapv2' && challenge?.length === 16 ? `E=691 R=0 C=${challenge.toString('hex').toUpperCase()} V=3` : 'E=691 R=0';
  const data = Buffer.concat([Buffer.from([ident]), Buffer.from(text, 'ascii')]);
  const vsa = Buffer.alloc(6 + data.length);
  vsa.writeUInt32BE(VENDOR_MICROSOFT, 0);
  vsa[4] = Ms.ChapError;
  vsa[5] = data.length + 2;
  data.copy(vsa, 6);
  return Buffer.concat([Buffer.from([Attr.VendorSpecific, vsa.length + 2]), vsa]);
}
