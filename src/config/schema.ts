import { z } from 'zod';
import { isIP } from 'node:net';
import { attributeKeyOf, encodeNamedAttributes } from '../radius/dictionary.js';
import { isVapidPrivateKey, isVapidPublicKey, isVapidSubject, vapidPublicKeyOf } from '../mfa/vapid.js';
import { DEFAULT_PUSH_SERVICES } from '../mfa/push-token.js';

/** "30s", "500ms", "15m", "1h", "2d" or a bare number of seconds -> milliseconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value);
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's'] ?? 1000;
  return Math.round(Number(m[1]) * unit);
}

const duration = z
  .union([z.number(), z.string()])
  .transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `invalid duration ${JSON.stringify(v)}: use a number of seconds or "500ms", "30s", "15m", "1h", "2d"` });
      return z.NEVER;
    }
    return ms;
  })
  .meta({ description: 'Duration: a number of seconds, or a string such as "500ms", "30s", "15m", "1h".' });

/** "HOST:PORT", "[v6]:PORT" -> { host, port }. */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:]+):(\d+)$/.exec(value);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 0 || port > 65535) return undefined;
  return { host: m[1]!, port };
}

const hostPort = z
  .string()
  .transform((v, ctx) => {
    const hp = parseHostPort(v);
    if (!hp) {
      ctx.addIssue({ code: 'custom', message: `invalid address ${JSON.stringify(v)}: use "HOST:PORT", e.g. "0.0.0.0:1812" or "[::]:1812"` });
      return z.NEVER;
    }
    return hp;
  })
  .meta({ description: '"HOST:PORT"; IPv6 as "[::]:1812".' });

const oneOrMany = <T extends z.ZodTypeAny>(item: T) =>
  z.union([item, z.array(item).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]) as z.output<T>[]);

export function isAddressOrCidr(value: string): boolean {
  const [ip, bits, extra] = value.split('/');
  if (extra !== undefined || !ip) return false;
  const family = isIP(ip);
  if (family === 0) return false;
  if (bits === undefined) return true;
  if (!/^\d+$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

export const METHODS = ['push', 'auto', 'totp', 'challenge', 'none', 'deny'] as const;
export const methodSchema = z.enum(METHODS);
export type Method = z.infer<typeof methodSchema>;

/** Reply attributes by dictionary name; a list gives the attribute several times. Checked against the dictionary at load. */
const replyAttributes = z
  .record(z.string(), z.union([z.string(), z.number(), z.array(z.union([z.string(), z.number()]))]))
  .default({})
  .superRefine((attributes, ctx) => {
    const r = encodeNamedAttributes(attributes);
    if (!r.ok) for (const e of r.errors) ctx.addIssue({ code: 'custom', path: [e.name], message: e.message });
  })
  .meta({ description: 'RADIUS reply attributes by dictionary name, e.g. {Filter-Id: vpn-users, Class: staff}.' });

/** "sha256:AB:CD:..." (32 octets in hex, colons optional) -> "AB:CD:..." as node:tls reports fingerprint256. */
export function normalizeFingerprint(value: string): string | undefined {
  const m = /^sha256:((?:[0-9a-f]{2}:?){32})$/i.exec(value.trim());
  if (!m) return undefined;
  const hex = m[1]!.replace(/:/g, '');
  return hex.length === 64 ? hex.toUpperCase().match(/../g)!.join(':') : undefined;
}

/** RFC 6614 §2.4: a RADIUS/TLS client is known by its verified certificate. */
const tlsIdentity = z
  .union([
    z.strictObject({
      subject: z
        .string()
        .regex(/^CN=.+$/, 'must be "CN=<common name>", e.g. "CN=vpn1.example.com" (compared exactly)')
        .meta({ description: "The certificate subject's CN, exact: \"CN=vpn1.example.com\"." }),
    }),
    z.strictObject({
      fingerprint: z
        .string()
        .refine((v) => normalizeFingerprint(v) !== undefined, { message: 'must be "sha256:" and 32 hex octets, e.g. from: openssl x509 -noout -fingerprint -sha256 -in cert.pem' })
        .transform((v) => normalizeFingerprint(v)!)
        .meta({ description: 'SHA-256 fingerprint of the client certificate: "sha256:AB:CD:...".' }),
    }),
  ])
  .meta({ description: 'RADIUS over TLS (listen.radsec): the client certificate, by subject CN or fingerprint.' });

const clientAddresses = oneOrMany(
  z.string().refine(isAddressOrCidr, { message: 'must be an IPv4/IPv6 address or CIDR, e.g. 10.1.0.0/24 or fd00::/64' }),
);

const client = z.strictObject({
  name: z.string().min(1),
  address: clientAddresses.optional().meta({ description: 'Source IPs/CIDRs. Required for UDP clients; for a TLS client it restricts where its certificate is accepted from.' }),
  secret: z
    .string()
    .min(1, 'must not be empty')
    .optional()
    .meta({ description: 'Shared secret; use "${ENV_VAR}" to keep it out of the file. Optional for a TLS client: "radsec" (RFC 6614 §2.3).' }),
  require_message_authenticator: z.boolean().default(true),
  nas_timeout: duration.optional().meta({ description: "The NAS's own RADIUS timeout per try; with nas_retries it bounds how long a push may hold a request." }),
  nas_retries: z.number().int().min(0).max(10).default(0).meta({ description: 'How many times the NAS retries after nas_timeout.' }),
  number_matching: z.boolean().optional().meta({ description: 'Overrides mfa.push.number_matching for this client (some VPNs cannot show a second prompt).' }),
  tls: tlsIdentity.optional(),
})
  .superRefine((c, ctx) => {
    if (!c.tls && c.address === undefined) ctx.addIssue({ code: 'custom', path: ['address'], message: 'missing; expected an IP address or CIDR, or a list of them (a RADIUS over TLS client gives tls instead)' });
    if (!c.tls && c.secret === undefined) ctx.addIssue({ code: 'custom', path: ['secret'], message: 'missing; expected a string' });
  })
  // RFC 6614 §2.3: over TLS the shared secret is "radsec" unless both ends agree on another.
  .transform((c) => ({ ...c, secret: c.secret ?? 'radsec' }));

const ldapUrl = z.string().regex(/^ldaps?:\/\/[^/\s]+\/?$/i, 'must be "ldap://host[:port]" or "ldaps://host[:port]"');
const userPlaceholder = (what: string) => z.string().min(1).refine((v) => v.includes('{user}'), { message: `${what} must contain {user}` });

const ldapFirstFactor = z
  .strictObject({
    type: z.literal('ldap'),
    url: oneOrMany(ldapUrl).optional().meta({ description: 'One URL or a list: several = failover, tried in order.' }),
    urls: z.array(ldapUrl).min(1).optional().meta({ description: 'Same as a list in `url`.' }),
    start_tls: z.boolean().default(false).meta({ description: 'Upgrade ldap:// with StartTLS before any bind (refused if the server cannot).' }),
    ca_file: z.string().min(1).optional().meta({ description: 'PEM CA bundle for ldaps:// and StartTLS; default: the system CAs.' }),
    allow_insecure: z
      .boolean()
      .default(false)
      .meta({ description: 'Allow ldap:// without start_tls: every password then crosses the network in clear. Only for a directory on this host; logged at start.' }),
    bind_dn_template: userPlaceholder('bind_dn_template')
      .optional()
      .meta({ description: 'Bind as this DN, {user} escaped per RFC 4514, e.g. "uid={user},ou=people,dc=example,dc=com" or AD "{user}@corp.example.com".' }),
    search: z
      .strictObject({
        bind_dn: z.string().min(1).meta({ description: 'Service account that finds the user (and reads groups).' }),
        password: z.string().min(1),
        base: z.string().min(1),
        filter: userPlaceholder('search.filter')
          .default('(uid={user})')
          .meta({ description: 'RFC 4515 filter; {user} is escaped. AD: "(sAMAccountName={user})" or "(userPrincipalName={user})", or mail.' }),
        scope: z.enum(['base', 'one', 'sub']).default('sub'),
        username_attribute: z
          .string()
          .min(1)
          .optional()
          .meta({
            description:
              'The directory\'s own name for the person, e.g. uid or sAMAccountName: with a filter that also matches aliases (mail, userPrincipalName), every alias is then one user here, named by this attribute.',
          }),
      })
      .optional(),
    groups: z
      .strictObject({
        attribute: z.string().min(1).default('memberOf').meta({ description: 'User attribute listing group DNs (AD, OpenLDAP memberof overlay).' }),
        search: z
          .strictObject({
            base: z.string().min(1),
            filter: z.string().min(1).default('(member={dn})').meta({ description: 'Groups of the user: {dn} and {user} are escaped.' }),
          })
          .optional()
          .meta({ description: 'Find groups by search instead (groupOfNames, posixGroup "(memberUid={user})").' }),
        name_attribute: z.string().min(1).default('cn').meta({ description: 'Which RDN/attribute names the group in config `groups:`.' }),
      })
      .prefault({}),
    timeout: duration.prefault('5s').meta({ description: 'Per LDAP server: connect and each operation.' }),
  })
  .superRefine((v, ctx) => {
    if (!v.url && !v.urls) ctx.addIssue({ code: 'custom', path: ['url'], message: 'url (or urls) is required' });
    if (v.url && v.urls) ctx.addIssue({ code: 'custom', path: ['urls'], message: 'give url or urls, not both' });
    if (!v.bind_dn_template === !v.search) ctx.addIssue({ code: 'custom', path: ['bind_dn_template'], message: 'give exactly one of bind_dn_template and search' });
    if (v.start_tls && [...(v.url ?? []), ...(v.urls ?? [])].some((u) => /^ldaps:/i.test(u))) {
      ctx.addIssue({ code: 'custom', path: ['start_tls'], message: 'start_tls is for ldap:// URLs; ldaps:// is TLS already' });
    }
    // A bind sends the user's password (and search.password) as it is: over plain ldap:// anyone on the path reads it.
    if (!v.start_tls && !v.allow_insecure) {
      const key = v.urls ? 'urls' : 'url';
      const plain = [...(v.url ?? []), ...(v.urls ?? [])].filter((u) => /^ldap:/i.test(u));
      if (plain.length > 0) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `${plain.join(', ')} without StartTLS would send passwords in clear: use ldaps://, or set first_factor.start_tls: true, or (only for a directory on this host) first_factor.allow_insecure: true`,
        });
      }
    }
  });

/** "10.0.0.5" or "10.0.0.5:1812" (an IP address: replies are matched by source address). */
const upstreamAddress = z.string().transform((v, ctx) => {
  const hp = parseHostPort(v) ?? (isIP(v) ? { host: v, port: 1812 } : undefined);
  if (!hp || !isIP(hp.host)) {
    ctx.addIssue({ code: 'custom', message: `invalid address ${JSON.stringify(v)}: use an IP address with an optional port, e.g. "10.0.0.5:1812"` });
    return z.NEVER;
  }
  return hp;
});

const upstreamServer = z.strictObject({
  address: upstreamAddress,
  secret: z.string().min(1, 'must not be empty'),
  require_message_authenticator: z.boolean().default(true).meta({
    description: 'Drop Access-* replies without a valid Message-Authenticator (BlastRADIUS). false only for an upstream too old to send it (FreeRADIUS < 3.2.5 without a reply rule, old NPS).',
  }),
});

const attributeNames = z.array(
  z.string().refine((n) => attributeKeyOf(n) !== undefined, { message: 'unknown attribute name (not in the RADIUS or shipped vendor dictionaries)' }),
);

const radiusFirstFactor = z.strictObject({
  type: z.literal('radius'),
  servers: z.array(upstreamServer).min(1).meta({ description: 'Upstream RADIUS servers (NPS, FreeRADIUS), tried in order.' }),
  timeout: duration.prefault('3s').meta({ description: 'Wait per try before retransmitting.' }),
  retries: z.number().int().min(0).max(10).default(2).meta({ description: 'Retransmissions per server before failing over to the next.' }),
  nas_identifier: z.string().min(1).default('radius-mfa').meta({ description: 'NAS-Identifier sent upstream when the NAS sent none of its own.' }),
  request_attributes: z
    .strictObject({
      drop: attributeNames.default([]).meta({ description: "Never copy these of the NAS's request upstream." }),
      add: replyAttributes.meta({ description: 'Add these to every upstream request, e.g. {NAS-Port-Type: Virtual}.' }),
    })
    .prefault({})
    .meta({
      description:
        "The NAS's NAS-IP-Address, NAS-Identifier, NAS-Port, NAS-Port-Type, Calling-/Called-Station-Id, Service-Type, Framed-Protocol and vendor attributes are copied to the upstream request (NPS network policies match on them) unless dropped here.",
    }),
  reply_attributes: z
    .strictObject({
      allow: attributeNames.optional().meta({ description: 'Pass only these attributes of the upstream Access-Accept.' }),
      deny: attributeNames.default([]).meta({ description: 'Never pass these.' }),
    })
    .prefault({})
    .meta({ description: 'Attributes of the upstream Access-Accept (Class, Filter-Id, vendor ones) go to the NAS unless filtered here.' }),
});

/** argon2id cost: memory in KiB, time = passes, parallelism = lanes (first_factor.password_hash). */
export interface HashParams {
  memory: number;
  time: number;
  parallelism: number;
}

/**
 * OWASP's argon2id minimum (m=19 MiB, t=2, p=1): a fraction of the library's defaults (m=64 MiB, t=3,
 * p=4), so an online server checks many passwords a second (docs/performance.md has the numbers); an
 * offline attacker with the store still pays it per guess.
 */
export const DEFAULT_HASH_PARAMS: HashParams = { memory: 19_456, time: 2, parallelism: 1 };

const passwordHash = z
  .strictObject({
    memory: z.number().int().min(8).max(1 << 20).default(DEFAULT_HASH_PARAMS.memory).meta({ description: 'argon2id memory in KiB (19456 = 19 MiB, the OWASP minimum).' }),
    time: z.number().int().min(1).max(32).default(DEFAULT_HASH_PARAMS.time).meta({ description: 'argon2id passes.' }),
    parallelism: z.number().int().min(1).max(64).default(DEFAULT_HASH_PARAMS.parallelism).meta({ description: 'argon2id lanes: each uses a thread of its own while hashing.' }),
  })
  .prefault({})
  .meta({ description: 'Cost of new local password hashes; a stored hash with other parameters is re-hashed at the user\'s next good login.' });

const localFirstFactor = z.strictObject({ type: z.literal('local'), password_hash: passwordHash });

const firstFactor = z.discriminatedUnion('type', [localFirstFactor, z.strictObject({ type: z.literal('none') }), ldapFirstFactor, radiusFirstFactor]);

/** The portal must check a password itself: `none` (the VPN checked it) has no meaning there. */
const portalFirstFactor = z.discriminatedUnion('type', [localFirstFactor, ldapFirstFactor, radiusFirstFactor]);

export type LdapFirstFactorConfig = z.output<typeof ldapFirstFactor>;
export type RadiusFirstFactorConfig = z.output<typeof radiusFirstFactor>;
export type FirstFactorConfig = z.output<typeof firstFactor>;

const accounting = z
  .strictObject({
    forward: z
      .strictObject({
        servers: z.array(upstreamServer).min(1),
        timeout: duration.prefault('3s'),
        retries: z.number().int().min(0).max(10).default(2),
      })
      .optional()
      .meta({ description: 'Also send every verified Accounting-Request to these servers (in order, failover).' }),
  })
  .prefault({})
  .meta({ description: 'Accounting-Requests on listen.acct are verified, logged as JSON and answered; optionally forwarded.' });

const totp = z
  .strictObject({
    digits: z.union([z.literal(6), z.literal(8)]).default(6),
    period: z.number().int().min(10).max(300).default(30),
    algorithm: z.enum(['SHA1', 'SHA256', 'SHA512']).default('SHA1'),
    window: z.number().int().min(0).max(10).default(1),
    issuer: z.string().min(1).default('radius-mfa'),
    separator: z.string().max(1).default('').meta({
      description: 'Between password and code in User-Password: "" means the code is the last digits, "," means "password,123456".',
    }),
  })
  .prefault({});

const mfa = z
  .strictObject({
    default_method: methodSchema.default('totp'),
    reject_delay: duration.prefault(1),
    totp,
    challenge: z
      .strictObject({
        timeout: duration.prefault(120),
        prompt: z.string().min(1).default('Enter the code from your authenticator app'),
      })
      .prefault({}),
    failmode: z.enum(['secure', 'safe']).default('secure').meta({
      description: 'When the push service cannot be reached: secure = reject, safe = accept after the first factor (logged loudly).',
    }),
    push: z
      .strictObject({
        timeout: duration.prefault(60).meta({ description: 'How long a push waits for the phone before the request is rejected.' }),
        number_matching: z.boolean().default(false),
        pin: z.enum(['off', 'optional', 'required']).default('off'),
        no_device: z.enum(['totp', 'reject']).default('totp').meta({
          description: 'push/auto for a user without an active device: totp = ask for a TOTP code (if enrolled), reject = refuse.',
        }),
        rate_limit: z
          .strictObject({
            max: z.number().int().min(1).default(5),
            window: duration.prefault('10m'),
          })
          .prefault({}),
        text: z.string().min(1).max(200).default('Sign-in request').meta({ description: 'The short text of the push notification.' }),
      })
      .prefault({}),
    non_pap: z.enum(['push', 'reject']).default('push').meta({
      description:
        'MS-CHAP and EAP requests (relayed to first_factor radius) carry no typed code: a user whose method is totp or challenge gets a push instead (push) or is refused (reject). Logged with its own reason.',
    }),
    lockout: z
      .strictObject({
        max_failures: z.number().int().min(0).default(5).meta({
          description:
            'Failures (a wrong code after a right password counts twice) that lock the user for every source they have not signed in from; at a familiar source, that source loses its place. 0 turns lockout off.',
        }),
        duration: duration.prefault('15m'),
        familiar_for: duration.prefault('30d').meta({
          description: 'How long a source (Calling-Station-Id, else NAS-IP-Address; the browser address at the portal) stays familiar after a sign-in from it: a lock from failures elsewhere does not apply there.',
        }),
      })
      .prefault({}),
  })
  .prefault({});

const webPush = z
  .strictObject({
    vapid_public_key: z
      .string()
      .refine(isVapidPublicKey, { message: 'must be a P-256 public key (65 bytes) in base64url: make a key pair with radius-mfa web-push keys' })
      .meta({ description: 'From radius-mfa web-push keys; browsers subscribe with it.' }),
    vapid_private_key: z
      .string()
      .refine(isVapidPrivateKey, { message: 'must be a P-256 private key (32 bytes) in base64url: make a key pair with radius-mfa web-push keys' })
      .meta({ description: 'Secret: use "${ENV_VAR}" to keep it out of the file.' }),
    subject: z
      .string()
      .refine(isVapidSubject, { message: 'must be a mailto: address or an https: URL where push services can reach you, e.g. "mailto:helpdesk@example.com"' })
      .meta({ description: 'How push services reach the operator (RFC 8292): "mailto:..." or "https://...".' }),
    push_services: z
      .array(z.string().min(1))
      .min(1)
      .default([...DEFAULT_PUSH_SERVICES])
      .meta({ description: "Hosts (and their subdomains) a subscription's endpoint may be on: the server POSTs there. Default: the push services of Chrome/Edge, Firefox, legacy Edge and Safari." }),
  })
  .superRefine((v, ctx) => {
    // Browsers subscribe with the public key; pushes signed with a private key of another pair are refused.
    if (isVapidPrivateKey(v.vapid_private_key) && isVapidPublicKey(v.vapid_public_key) && vapidPublicKeyOf(v.vapid_private_key) !== v.vapid_public_key) {
      ctx.addIssue({ code: 'custom', path: ['vapid_public_key'], message: 'is not the public half of vapid_private_key: copy both from one run of radius-mfa web-push keys' });
    }
  });

const group = z.strictObject({
  members: z.array(z.string().min(1)).default([]),
  method: methodSchema.optional(),
  reply: replyAttributes,
});

const configUser = z.strictObject({
  method: methodSchema.optional(),
  reply: replyAttributes,
});

export const configSchema = z.strictObject({
  listen: z
    .strictObject({
      auth: oneOrMany(hostPort).optional(),
      acct: oneOrMany(hostPort).optional(),
      radsec: oneOrMany(hostPort).optional().meta({ description: 'RADIUS over TLS (RFC 6614), e.g. "0.0.0.0:2083": authentication, accounting and Status-Server on one TLS connection. Needs `radsec`.' }),
    })
    .superRefine((l, ctx) => {
      if (!l.auth && !l.radsec) ctx.addIssue({ code: 'custom', path: ['auth'], message: 'is required unless listen.radsec is set' });
    }),
  clients: z.array(client).min(1, 'at least one client is needed: a RADIUS server answers nobody without one'),
  radsec: z
    .strictObject({
      cert: z.string().min(1).meta({ description: 'PEM server certificate (chain) file.' }),
      key: z.string().min(1).meta({ description: 'PEM private key file.' }),
      ca: z.string().min(1).meta({ description: 'PEM CA file: client certificates must chain to it.' }),
      handshake_timeout: duration.prefault('10s').meta({ description: 'A TLS handshake, and each RADIUS packet once begun, must be complete within this.' }),
      idle_timeout: duration.prefault('10m').meta({ description: 'A connection with no traffic and no request being decided is closed after this.' }),
    })
    .optional()
    .meta({ description: 'TLS settings of listen.radsec (TLS 1.2 or later; client certificates required).' }),
  first_factor: firstFactor.prefault({ type: 'local' }),
  accounting,
  mfa,
  groups: z.record(z.string(), group).default({}),
  users: z.record(z.string(), configUser).default({}),
  rate_limits: z
    .strictObject({
      client_per_second: z.number().int().min(0).default(1000).meta({ description: 'Access-Requests per second from one client (NAS) this node takes; more are dropped (the NAS retries). 0 = no limit.' }),
      source_per_minute: z
        .number()
        .int()
        .min(0)
        .default(120)
        .meta({ description: 'Access-Requests per minute from one Calling-Station-Id that is no familiar source of the user; more are dropped. 0 = no limit.' }),
    })
    .prefault({})
    .meta({ description: 'Per node, checked before any other work: a flood from one NAS or one address cannot take the capacity of everyone else.' }),
  usernames: z
    .strictObject({
      realms: z
        .array(z.string().min(1).regex(/^[^\\@\s]+$/, 'a realm name has no "\\", "@" or spaces, e.g. CORP or corp.example.com'))
        .default([])
        .meta({ description: 'Realms removed from "REALM\\user" and "user@realm", so both mean the same person as "user". A name in any other realm stays whole.' }),
    })
    .prefault({})
    .meta({ description: 'Usernames are compared in one canonical form everywhere: NFKC, trimmed, lower-case, then a listed realm removed.' }),
  dedupe: z
    .strictObject({
      window: duration.prefault(30).meta({ description: 'How long an answered request is remembered to re-send its reply to a retransmission.' }),
      max_entries: z.number().int().min(100).max(4_000_000).default(100_000).meta({ description: 'Answered requests kept for retransmissions (and, apart, requests being decided); about 300 bytes each (128 of them for the reply), reserved at start and taken as first used.' }),
    })
    .prefault({}),
  mobile_app: z
    .strictObject({
      account_name: z.string().min(1).default('radius-mfa').meta({ description: 'The name the app shows for this account (the seed\'s "Account Name").' }),
      public_url: z.url().optional().meta({ description: 'The URL phones reach the HTTP service at, e.g. https://mfa.example.com; default: from http.listen.' }),
      activation_ttl: duration.prefault('15m'),
      firebase: z
        .strictObject({
          service_account_file: z.string().min(1),
        })
        .optional()
        .meta({ description: 'FCM delivery (native apps); without it they poll /api/v1/pending.' }),
      web_push: webPush
        .optional()
        .meta({ description: 'Web Push (RFC 8030, VAPID keys) to the companion app; without it the app polls /api/v1/pending while it is open.' }),
    })
    .prefault({}),
  http: z
    .strictObject({
      listen: hostPort,
      tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
      insecure: z.boolean().default(false).meta({ description: 'Allow plain HTTP on a non-loopback address (only behind a TLS reverse proxy).' }),
    })
    .optional()
    .meta({ description: 'Mobile App API, portal and companion app. Off when absent.' }),
  portal: z
    .strictObject({
      enabled: z.boolean().default(true).meta({ description: 'Serve the self-service portal at /portal on http.listen (the Mobile App API is served either way).' }),
      first_factor: portalFirstFactor
        .optional()
        .meta({ description: 'How the portal checks passwords, when not as first_factor does: required when first_factor.type is none (the VPN checked the password, so the portal has no first factor of its own).' }),
      allow_user_enrollment: z.boolean().default(true).meta({ description: 'A user may enroll a second factor (TOTP) in the portal; a user with none may sign in with the password only to do so.' }),
      allow_method_selection: z.boolean().default(false).meta({ description: 'A user may choose their own method among portal.allowed_methods.' }),
      allow_mobile_app_activation: z.boolean().default(true).meta({ description: 'The portal shows an activation QR code and code for the companion app (or any app speaking the Mobile App API).' }),
      allowed_methods: z
        .array(z.enum(['push', 'auto', 'totp', 'challenge']))
        .min(1)
        .default(['push', 'totp', 'challenge'])
        .meta({ description: 'What a user may choose when allow_method_selection is on.' }),
      session_ttl: duration.prefault('15m').meta({ description: 'A portal session ends after this long without a request.' }),
      session_max: duration.prefault('8h').meta({ description: 'A portal session ends this long after sign-in, active or not.' }),
    })
    .prefault({})
    .meta({ description: 'The self-service portal under /portal (served with the Mobile App API on http.listen).' }),
  store: z
    .strictObject({
      type: z.enum(['sqlite', 'postgres']).default('sqlite').meta({ description: 'sqlite: one file, one node (default). postgres: several nodes share one database (docs/ha.md).' }),
      path: z.string().min(1).default('./data/radius-mfa.db').meta({ description: 'The SQLite file (store.type sqlite).' }),
      url: z
        .string()
        .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL, e.g. postgres://radius_mfa:${PGPASSWORD}@db.example.com:5432/radius_mfa')
        .optional()
        .meta({ description: 'PostgreSQL connection URL (store.type postgres); put the password in an ${ENV_VAR}.' }),
      pool: z.number().int().min(1).max(1000).optional().meta({ description: 'PostgreSQL connections this node keeps at most; default 10.' }),
      tls: z
        .strictObject({
          ca: z.string().min(1).optional().meta({ description: 'PEM file of the CA that signed the server certificate; default: the system CAs.' }),
          cert: z.string().min(1).optional().meta({ description: 'Client certificate (PEM file), when the server asks for one.' }),
          key: z.string().min(1).optional().meta({ description: 'Key of the client certificate (PEM file).' }),
        })
        .optional()
        .meta({ description: 'Connect to PostgreSQL over TLS, verifying the server certificate.' }),
      encryption_key: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters (32 bytes): generate one with openssl rand -hex 32').optional().meta({ description: '64 hex chars (32 bytes) for AES-256-GCM; default: key_file. Every node sharing a store needs the same key, e.g. "${RADIUS_MFA_KEY}".' }),
      key_file: z.string().optional().meta({ description: 'Created 0600 with a random key on first start (sqlite only); default: <store.path>.key.' }),
    })
    .superRefine((v, ctx) => {
      if (v.type !== 'postgres') return;
      if (!v.url) ctx.addIssue({ code: 'custom', path: ['url'], message: 'is required with store.type postgres, e.g. url: "postgres://radius_mfa:${PGPASSWORD}@db.example.com/radius_mfa"' });
      // A key file made on each node would give each node its own key: none could read the others' secrets.
      if (v.encryption_key === undefined && v.key_file === undefined) {
        ctx.addIssue({ code: 'custom', path: ['encryption_key'], message: 'is required with store.type postgres (every node must use the same key): encryption_key: "${RADIUS_MFA_KEY}", or key_file: a file copied to every node' });
      }
    })
    .prefault({}),
  state: z
    .strictObject({
      type: z.enum(['memory', 'redis']).default('memory').meta({ description: 'memory: this process only (one node, default). redis: shared by every node (docs/ha.md).' }),
      url: z
        .string()
        .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// (TLS) URL, e.g. redis://:${REDIS_PASSWORD}@redis.example.com:6379/0')
        .optional()
        .meta({ description: 'Redis or Valkey URL (state.type redis); rediss:// for TLS. With sentinel, only its password, database and scheme are used.' }),
      prefix: z.string().min(1).default('radius-mfa:').meta({ description: 'Prefix of every key: several deployments can share one Redis.' }),
      timeout: duration.prefault('2s').meta({ description: 'How long one Redis command may take before the request it serves is rejected (state_unavailable).' }),
      tls: z
        .strictObject({ ca: z.string().min(1).meta({ description: 'PEM file of the CA that signed the Redis server certificate.' }) })
        .optional()
        .meta({ description: 'For rediss:// with a private CA; default: the system CAs.' }),
      sentinel: z
        .strictObject({
          name: z.string().min(1).meta({ description: 'The master group name the sentinels monitor (sentinel monitor NAME ...).' }),
          nodes: z.array(hostPort).min(1).meta({ description: 'Sentinel addresses, "HOST:PORT" (usually port 26379).' }),
        })
        .optional()
        .meta({ description: 'Find the Redis master through Redis Sentinel (failover).' }),
    })
    .superRefine((v, ctx) => {
      if (v.type === 'redis' && !v.url) ctx.addIssue({ code: 'custom', path: ['url'], message: 'is required with state.type redis, e.g. url: "redis://127.0.0.1:6379/0"' });
    })
    .prefault({}),
  metrics: z
    .strictObject({ listen: hostPort })
    .optional()
    .meta({ description: 'Prometheus metrics at http://HOST:PORT/metrics. Off when absent; keep it on an internal address.' }),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    })
    .prefault({}),
})
  .superRefine((c, ctx) => {
    if (c.listen.radsec && !c.radsec) ctx.addIssue({ code: 'custom', path: ['radsec'], message: 'is required with listen.radsec: give {cert, key, ca}' });
  });

export type Config = z.output<typeof configSchema>;

/** Margin between our answer and the NAS giving up: network and scheduling slack. */
const HOLD_MARGIN_MS = 1000;

/** How long a client's NAS waits in all (nas_timeout x tries, less a margin); Infinity when not declared. */
export function holdBudgetMs(nasTimeoutMs: number | undefined, nasRetries: number): number {
  return nasTimeoutMs === undefined ? Infinity : Math.max(0, nasTimeoutMs * (nasRetries + 1) - HOLD_MARGIN_MS);
}
export type ClientConfig = Config['clients'][number];
export type HostPort = { host: string; port: number };
