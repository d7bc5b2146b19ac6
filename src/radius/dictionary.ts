// Named reply attributes -> wire bytes, through the `radius` package's dictionaries. Runs at config
// load only, so the request path copies finished bytes; and only when a config names attributes (the
// package and its dictionaries cost start-up time), so it is loaded on first use.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type RadiusPackage from 'radius';
import { lazy } from '../shared/lazy.js';

/** The package, with parts of its API that its type definitions leave out. */
type Radius = typeof RadiusPackage & {
  load_dictionaries(): void;
  unload_dictionaries(): void;
  decode_without_secret(o: { packet: Buffer }): { attributes: Record<string, unknown> };
  attr_name_to_id(name: string, vendorId?: number): string | undefined;
  _attr_to(name: string, vendorId: number | undefined, field: 2): string | undefined;
};

/** Vendor dictionaries we ship (FreeRADIUS format): Cisco, Cisco-ASA, Fortinet, Palo Alto, Microsoft. */
const VENDOR_DICTIONARY_DIR = fileURLToPath(new URL('../../dictionaries/', import.meta.url));

/** The `radius` package with our vendor dictionaries added. */
export const radiusWithVendors = lazy((): Radius => {
  const radius = createRequire(import.meta.url)('radius') as Radius;
  radius.add_dictionary(VENDOR_DICTIONARY_DIR);
  // Dictionaries loaded before ours was added would miss the vendor attributes: load again on next use.
  radius.unload_dictionaries();
  return radius;
});

const vendors = lazy((): readonly { name: string; id: number }[] =>
  readdirSync(VENDOR_DICTIONARY_DIR)
    .filter((f) => f.startsWith('dictionary.'))
    .flatMap((f) => [...readFileSync(`${VENDOR_DICTIONARY_DIR}/${f}`, 'ascii').matchAll(/^VENDOR\s+(\S+)\s+(\d+)/gm)].map((m) => ({ name: m[1]!, id: Number(m[2]) }))),
);

/** Where a dictionary name lives: a standard attribute, or a vendor's (inside Vendor-Specific). */
export type AttributeKey = { type: number; vendor?: number };

/** Resolves a dictionary name (standard first, then the shipped vendor dictionaries). */
export function attributeKeyOf(name: string): AttributeKey | undefined {
  const dictionary = radiusWithVendors();
  dictionary.load_dictionaries();
  const std = dictionary.attr_name_to_id(name);
  if (std !== undefined) return { type: Number(std) };
  for (const v of vendors()) {
    const id = dictionary.attr_name_to_id(name, v.id);
    if (id !== undefined) return { type: Number(id), vendor: v.id };
  }
  return undefined;
}

export type AttributeValue = string | number;
export type NamedAttributes = Readonly<Record<string, AttributeValue | readonly AttributeValue[]>>;

/** Attributes the server itself owns in a reply: configuring them would break the protocol. */
const RESERVED = new Set(['User-Password', 'CHAP-Password', 'Message-Authenticator', 'Proxy-State', 'State', 'EAP-Message']);
const DUMMY_AUTHENTICATOR = Buffer.alloc(16);

export type EncodeAttributesResult = { ok: true; bytes: Buffer } | { ok: false; errors: { name: string; message: string }[] };

/** Encodes `{Filter-Id: x, Class: [a, b]}` in order, one attribute per value; reports each bad name or value. */
export function encodeNamedAttributes(attributes: NamedAttributes): EncodeAttributesResult {
  const pairs: Pair[] = [];
  const errors: { name: string; message: string }[] = [];
  radiusWithVendors().load_dictionaries();
  for (const [name, value] of Object.entries(attributes)) {
    const values = Array.isArray(value) ? value : [value as AttributeValue];
    if (RESERVED.has(name)) {
      errors.push({ name, message: `${name} is set by the server itself and cannot be configured` });
      continue;
    }
    const key = attributeKeyOf(name);
    if (key === undefined) {
      errors.push({ name, message: `unknown attribute "${name}": use a name from the RADIUS dictionary (e.g. Filter-Id, Class, Session-Timeout) or a vendor one (Cisco-AVPair, ASA-Group-Policy, Fortinet-Group-Name, PaloAlto-User-Group, MS-...)` });
      continue;
    }
    for (const v of values) {
      try {
        const pair = toPair(name, v, key);
        encodeWithRadius([pair]);
        pairs.push(pair);
      } catch (err) {
        errors.push({ name, message: `invalid value ${JSON.stringify(v)} for ${name}: ${(err as Error).message.replace(/^en[cv]ode: /, '')}` });
      }
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, bytes: encodeWithRadius(pairs) };
}

type Pair = [string, AttributeValue | Buffer] | ['Vendor-Specific', number, [string, AttributeValue | Buffer][]];

/** octets attributes (Class, ...) take text as UTF-8, or hex when written "0x..."; vendor ones go inside Vendor-Specific. */
function toPair(name: string, value: AttributeValue, key: AttributeKey): Pair {
  let v: AttributeValue | Buffer = value;
  if (radiusWithVendors()._attr_to(name, key.vendor, 2) === 'octets') {
    if (typeof value !== 'string') throw new Error('octets: give text or "0x" followed by hex digits');
    v = /^0x([0-9a-f]{2})+$/i.test(value) ? Buffer.from(value.slice(2), 'hex') : Buffer.from(value, 'utf8');
    if (v.length === 0) throw new Error('must not be empty');
  }
  return key.vendor === undefined ? [name, v] : ['Vendor-Specific', key.vendor, [[name, v]]];
}

function encodeWithRadius(pairs: Pair[]): Buffer {
  const packet = radiusWithVendors().encode({ code: 'Access-Accept', secret: 'x', identifier: 0, authenticator: DUMMY_AUTHENTICATOR, attributes: pairs } as never);
  return packet.subarray(20);
}
