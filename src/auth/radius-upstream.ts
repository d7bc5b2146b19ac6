// Upstream RADIUS first factor (NPS, FreeRADIUS): the password, without the code, goes to the upstream
// re-hidden with its secret, with the NAS's own attributes (NPS policies match on them). MS-CHAP and EAP
// requests are relayed as they are. Replies are rebuilt for our NAS, never forwarded byte for byte:
// hidden attributes (MS-MPPE keys, Tunnel-Password) are re-hidden with the NAS's secret.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RadiusFirstFactorConfig } from '../config/schema.js';
import { attributeKeyOf, encodeNamedAttributes, type AttributeKey } from '../radius/dictionary.js';
import { UpstreamClient, type ExchangeResult } from '../radius/client.js';
import { Attr, Code, encodeAttribute, findAttribute, type RadiusAttribute, type RadiusPacket } from '../radius/packet.js';
import { isHidden, matchesKey, Ms, nasAttributesOf, rehide, relayedAttributesOf, vendorOf, VENDOR_MICROSOFT, type RehideKeys } from '../radius/proxy.js';
import type { FirstFactor, FirstFactorResult, NasRequest, RelayResult } from './first-factor.js';

/** Attributes the server owns in its own replies, or that only make sense toward the upstream. */
const NEVER_PASSED = new Set<number>([Attr.UserName, Attr.UserPassword, Attr.ChapPassword, Attr.State, Attr.ProxyState, Attr.EapMessage, Attr.MessageAuthenticator]);
/** What MS-CHAP and EAP cannot work without, passed whatever reply_attributes says (RFC 3579, RFC 2548). */
const MS_PROTOCOL = new Set<number>([Ms.ChapError, Ms.Chap2Success, Ms.MppeSendKey, Ms.MppeRecvKey, Ms.ChapMppeKeys, 7, 8]); // 7, 8: MPPE Encryption Policy / Types

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
  const drop = config.request_attributes.drop.map((n) => attributeKeyOf(n)!);
  const added = encodeNamedAttributes(config.request_attributes.add);
  const add = added.ok ? added.bytes : Buffer.alloc(0);
  const nasIdentifier = encodeAttribute(Attr.NasIdentifier, config.nas_identifier);
  for (const s of config.servers) {
    if (!s.require_message_authenticator) log.warn({ upstream: `${s.address.host}:${s.address.port}` }, 'upstream replies are accepted without Message-Authenticator: exposed to BlastRADIUS (CVE-2024-3596)');
  }
  const warnFor = (q: number | undefined, server: string) => (what: string) => log.warn({ q, upstream: server }, what);

  return {
    type: 'radius',

    async check(username, password, _user, context): Promise<FirstFactorResult> {
      const pw = Buffer.from(password, 'utf8');
      if (pw.length === 0) return { kind: 'reject', reason: 'no_password' };
      if (pw.length > 128) return { kind: 'reject', reason: 'bad_password' }; // RFC 2865 §5.2 limit
      const userName = Buffer.from(context?.typedUsername ?? username, 'utf8');
      if (userName.length === 0 || userName.length > 253) return { kind: 'reject', reason: 'unknown_user' };
      const parts = [encodeAttribute(Attr.UserName, userName)];
      const nas = context?.nas ? nasAttributesOf(context.nas.packet, drop) : [];
      parts.push(...nas);
      if (!context?.nas || !findAttribute(context.nas.packet, Attr.NasIdentifier)) parts.push(nasIdentifier);
      parts.push(add);
      if (context?.upstreamState) parts.push(encodeAttribute(Attr.State, context.upstreamState));
      const r = await exchange(Buffer.concat(parts), pw);
      if (r.kind === 'no_response') {
        const reason = `no upstream RADIUS server answered (${r.detail})`;
        log.error({ q: context?.q, reason }, reason);
        return { kind: 'unavailable', reason };
      }
      const p = r.packet;
      switch (p.code) {
        case Code.AccessAccept:
          return { kind: 'accept', reply: passedAttributes(p, filter, warnFor(context?.q, r.server), keysFor(r, context?.nas)) };
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

    async relay(request, context): Promise<RelayResult> {
      const parts = relayedAttributesOf(request.packet, drop);
      if (!findAttribute(request.packet, Attr.NasIdentifier)) parts.push(nasIdentifier);
      parts.push(add);
      const r = await exchange(Buffer.concat(parts));
      if (r.kind === 'no_response') {
        const reason = `no upstream RADIUS server answered (${r.detail})`;
        log.error({ q: context?.q, reason }, reason);
        return { kind: 'unavailable', reason };
      }
      const p = r.packet;
      // RFC 3579 §3.2: a reply with EAP-Message and no Message-Authenticator is silently discarded.
      if (findAttribute(p, Attr.EapMessage) && p.messageAuthenticatorOffset < 0) {
        const reason = `upstream ${r.server} sent EAP-Message without Message-Authenticator (RFC 3579): discarded`;
        log.warn({ q: context?.q, upstream: r.server }, reason);
        return { kind: 'unavailable', reason };
      }
      const warn = warnFor(context?.q, r.server);
      switch (p.code) {
        case Code.AccessAccept:
          return { kind: 'accept', userName: findAttribute(p, Attr.UserName)?.toString('utf8'), reply: passedAttributes(p, filter, warn, keysFor(r, request), true) };
        case Code.AccessReject:
          return { kind: 'reject', reply: relayedReply(p, (a) => a.type === Attr.EapMessage || a.type === Attr.ReplyMessage || isMs(a, Ms.ChapError)) };
        default:
          // Each EAP round whole: EAP-Message fragments in order, the upstream's own State, Session-Timeout, Reply-Message.
          return { kind: 'challenge', reply: relayedReply(p, (a) => a.type !== Attr.MessageAuthenticator && a.type !== Attr.ProxyState && !isHidden(a)) };
      }
    },

    close: () => client.close(),
  };

  function exchange(attributes: Buffer, password?: Buffer): Promise<ExchangeResult> {
    return client.exchange({ code: Code.AccessRequest, attributes, password });
  }
}

function keysFor(r: Extract<ExchangeResult, { kind: 'response' }>, nas: NasRequest | undefined): RehideKeys | undefined {
  if (!nas) return undefined;
  return { fromSecret: r.secret, fromAuthenticator: r.requestAuthenticator, toSecret: nas.client.secret, toAuthenticator: nas.packet.authenticator, random: randomBytes };
}

function isMs(a: RadiusAttribute, vendorType: number): boolean {
  const v = vendorOf(a);
  return v?.vendor === VENDOR_MICROSOFT && v.vendorType === vendorType;
}

function relayedReply(p: RadiusPacket, keep: (a: RadiusAttribute) => boolean): Buffer {
  return Buffer.concat(p.attributes.filter(keep).map((a) => p.raw.subarray(a.offset, a.offset + a.value.length + 2)));
}

function attributesOf(p: RadiusPacket, type: number): Buffer[] {
  return p.attributes.filter((a) => a.type === type).map((a) => a.value);
}

/**
 * The upstream Accept's attributes that go on to the NAS, re-encoded (RFC 2865 §5.25: Class untouched).
 * Hidden ones are re-hidden for the NAS with `keys`, or dropped without them. `relayed`: the Accept of a
 * relayed MS-CHAP / EAP request, whose EAP-Message, User-Name, MS-CHAP2-Success and keys always pass.
 */
export function passedAttributes(p: RadiusPacket, filter: UpstreamFilter, warn: (what: string) => void, keys?: RehideKeys, relayed = false): Buffer {
  const out: Buffer[] = [];
  for (const a of p.attributes) {
    const v = vendorOf(a);
    // A relayed Accept's User-Name is the upstream's word on who signed in (the inner identity): the NAS accounts with it.
    const protocol = relayed && (a.type === Attr.EapMessage || a.type === Attr.UserName || (v?.vendor === VENDOR_MICROSOFT && MS_PROTOCOL.has(v.vendorType)));
    if (!protocol) {
      if (NEVER_PASSED.has(a.type)) continue;
      if (filter.allow && !matchesKey(filter.allow, a)) continue;
      if (matchesKey(filter.deny, a)) continue;
    }
    if (isHidden(a)) {
      const again = keys && rehide(a, keys);
      if (!again) {
        warn(`upstream sent an attribute hidden with its secret (type ${a.type}${v ? `, vendor ${v.vendor}/${v.vendorType}` : ''}) that ${keys ? 'does not decrypt' : 'cannot be re-hidden here'}: not passed on`);
        continue;
      }
      out.push(again);
      continue;
    }
    out.push(p.raw.subarray(a.offset, a.offset + a.value.length + 2));
  }
  return Buffer.concat(out);
}
