import { z } from 'zod';
import { isIP } from 'node:net';
import { encodeNamedAttributes } from '../radius/dictionary.js';

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

export const METHODS = ['totp', 'challenge', 'none', 'deny'] as const;
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

const client = z.strictObject({
  name: z.string().min(1),
  address: oneOrMany(
    z.string().refine(isAddressOrCidr, { message: 'must be an IPv4/IPv6 address or CIDR, e.g. 10.1.0.0/24 or fd00::/64' }),
  ),
  secret: z.string().min(1, 'must not be empty').meta({ description: 'Shared secret; use "${ENV_VAR}" to keep it out of the file.' }),
  require_message_authenticator: z.boolean().default(true),
});

const firstFactor = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('local') }),
  z.strictObject({ type: z.literal('none') }),
]);

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
    lockout: z
      .strictObject({
        max_failures: z.number().int().min(0).default(5).meta({ description: '0 turns lockout off.' }),
        duration: duration.prefault('15m'),
      })
      .prefault({}),
  })
  .prefault({});

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
  listen: z.strictObject({
    auth: oneOrMany(hostPort),
    acct: oneOrMany(hostPort).optional(),
  }),
  clients: z.array(client).min(1, 'at least one client is needed: a RADIUS server answers nobody without one'),
  first_factor: firstFactor.prefault({ type: 'local' }),
  mfa,
  groups: z.record(z.string(), group).default({}),
  users: z.record(z.string(), configUser).default({}),
  dedupe: z
    .strictObject({
      window: duration.prefault(30).meta({ description: 'How long an answered request is remembered to re-send its reply to a retransmission.' }),
      max_entries: z.number().int().min(100).default(100_000),
    })
    .prefault({}),
  store: z
    .strictObject({
      type: z.literal('sqlite').default('sqlite'),
      path: z.string().min(1).default('./data/radius-mfa.db'),
      encryption_key: z.string().optional().meta({ description: '64 hex chars (32 bytes) for AES-256-GCM; default: key_file.' }),
      key_file: z.string().optional().meta({ description: 'Created 0600 with a random key on first start; default: <store.path>.key.' }),
    })
    .prefault({}),
  state: z.strictObject({ type: z.literal('memory').default('memory') }).prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    })
    .prefault({}),
});

export type Config = z.output<typeof configSchema>;
export type ClientConfig = Config['clients'][number];
export type HostPort = { host: string; port: number };
