// Upstream RADIUS first factor (NPS, FreeRADIUS): the password, without the code, goes to the upstream
// re-hidden with its secret. Replies are rebuilt for our NAS, never forwarded byte for byte.
import type { Logger } from 'pino';
import type { RadiusFirstFactorConfig } from '../config/schema.js';
import { attributeKeyOf, type AttributeKey } from '../radius/dictionary.js';
import { UpstreamClient } from '../radius/client.js';
import { Attr, Code, encodeAttribute, type RadiusPacket } from '../radius/packet.js';
import type { FirstFactor, FirstFactorResult } from './first-factor.js';

const VENDOR_MICROSOFT = 311;
/** Attributes the server owns in its own replies, or that only make sense toward the upstream. */
const NEVER_PASSED = new Set([Attr.UserName, Attr.UserPassword, Attr.ChapPassword, Attr.State, Attr.ProxyState, Attr.EapMessage, Attr.MessageAuthenticator]);
/** Hidden with the upstream secret and our Request Authenticator (RFC 2868 §3.5, RFC 2548 §2.4): not re-hidden here, so dropped. */
const TUNNEL_PASSWORD = 69;
const MS_MPPE_KEYS = new Set([16, 17]);

export interface UpstreamFilter {
  allow?: readonly AttributeKey[];
  deny: readonly AttributeKey[];
}

export function radiusUpstreamFirstFactor(config: RadiusFirstFactorConfig, logger: Logger): FirstFactor {
  const log = logger.child({ first_factor: 'radius' });
  const client = new UpstreamClient({
    servers: config.servers.map((s) => ({
      host: s.address.host,
      port: s.address.port,
      secret: Buffer.from(s.secret, 'utf8'),
      requireMessageAuthenticator: s.require_message_authenticator,
    })),
    timeoutMs: config.timeout,
    retries: config.retries,
    logger: log,
  });
  const filter: UpstreamFilter = {
    allow: config.reply_attributes.allow?.map((n) => attributeKeyOf(n)!),
    deny: config.reply_attributes.deny.map((n) => attributeKeyOf(n)!),
  };
  const nasIdentifier = encodeAttribute(Attr.NasIdentifier, config.nas_identifier);
  for (const s of config.servers) {
    if (!s.require_message_authenticator) log.warn({ upstream: `${s.address.host}:${s.address.port}` }, 'upstream replies are accepted without Message-Authenticator: exposed to BlastRADIUS (CVE-2024-3596)');
  }

  return {
    type: 'radius',

    async check(username, password, _user, context): Promise<FirstFactorResult> {
      const pw = Buffer.from(password, 'utf8');
      if (pw.length === 0) return { kind: 'reject', reason: 'no_password' };
      if (pw.length > 128) return { kind: 'reject', reason: 'bad_password' }; // RFC 2865 §5.2 limit
      const userName = Buffer.from(context?.typedUsername ?? username, 'utf8');
      if (userName.length === 0 || userName.length > 253) return { kind: 'reject', reason: 'unknown_user' };
      const parts = [encodeAttribute(Attr.UserName, userName), nasIdentifier];
      if (context?.upstreamState) parts.push(encodeAttribute(Attr.State, context.upstreamState));
      const r = await client.exchange({ code: Code.AccessRequest, attributes: Buffer.concat(parts), password: pw });
      if (r.kind === 'no_response') {
        const reason = `no upstream RADIUS server answered (${r.detail})`;
        log.error({ q: context?.q, reason }, reason);
        return { kind: 'unavailable', reason };
      }
      const p = r.packet;
      switch (p.code) {
        case Code.AccessAccept:
          return { kind: 'accept', reply: passedAttributes(p, filter, (what) => log.warn({ q: context?.q, upstream: r.server }, what)) };
        case Code.AccessReject:
          log.debug({ q: context?.q, upstream: r.server }, 'upstream RADIUS server rejected the password');
          return { kind: 'reject', reason: 'bad_password' };
        default: {
          const state = attributesOf(p, Attr.State)[0];
          if (!state) {
            log.warn({ q: context?.q, upstream: r.server }, 'upstream Access-Challenge without State: treated as a reject');
            return { kind: 'reject', reason: 'bad_password' };
          }
          const message = Buffer.concat(attributesOf(p, Attr.ReplyMessage)).toString('utf8') || 'Enter the response';
          return { kind: 'challenge', upstreamState: Buffer.from(state), message };
        }
      }
    },

    close: () => client.close(),
  };
}

function attributesOf(p: RadiusPacket, type: number): Buffer[] {
  return p.attributes.filter((a) => a.type === type).map((a) => a.value);
}

function matches(keys: readonly AttributeKey[], type: number, vendor: number | undefined, vendorType: number | undefined): boolean {
  return keys.some((k) => (k.vendor === undefined ? k.type === type : k.vendor === vendor && k.type === vendorType));
}

/** The upstream Accept's attributes that go on to the NAS, re-encoded (RFC 2865 §5.25: Class untouched). */
export function passedAttributes(p: RadiusPacket, filter: UpstreamFilter, warn: (what: string) => void): Buffer {
  const out: Buffer[] = [];
  for (const a of p.attributes) {
    if (NEVER_PASSED.has(a.type as never)) continue;
    // Vendor-Specific: vendor id (4 octets), then the vendor's own type (RFC 2865 §5.26).
    const vendor = a.type === Attr.VendorSpecific && a.value.length >= 5 ? a.value.readUInt32BE(0) : undefined;
    const vendorType = vendor !== undefined ? a.value[4] : undefined;
    if (a.type === TUNNEL_PASSWORD || (vendor === VENDOR_MICROSOFT && MS_MPPE_KEYS.has(vendorType!))) {
      warn(`upstream sent an attribute hidden with its secret (type ${a.type}${vendor !== undefined ? `, vendor ${vendor}/${vendorType}` : ''}): not passed on`);
      continue;
    }
    if (filter.allow && !matches(filter.allow, a.type, vendor, vendorType)) continue;
    if (matches(filter.deny, a.type, vendor, vendorType)) continue;
    out.push(p.raw.subarray(a.offset, a.offset + a.value.length + 2));
  }
  return Buffer.concat(out);
}
