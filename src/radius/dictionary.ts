// Named reply attributes -> wire bytes, through the `radius` package's dictionaries. Runs at config
// load only, so the request path copies finished bytes.
import radius from 'radius';

// Parts of the package's API that its type definitions leave out.
const dictionary = radius as unknown as {
  load_dictionaries(): void;
  attr_name_to_id(name: string, vendorId?: number): string | undefined;
};

export type AttributeValue = string | number;
export type NamedAttributes = Readonly<Record<string, AttributeValue | readonly AttributeValue[]>>;

/** Attributes the server itself owns in a reply: configuring them would break the protocol. */
const RESERVED = new Set(['User-Password', 'CHAP-Password', 'Message-Authenticator', 'Proxy-State', 'State', 'EAP-Message']);
const DUMMY_AUTHENTICATOR = Buffer.alloc(16);

export type EncodeAttributesResult = { ok: true; bytes: Buffer } | { ok: false; errors: { name: string; message: string }[] };

/** Encodes `{Filter-Id: x, Class: [a, b]}` in order, one attribute per value; reports each bad name or value. */
export function encodeNamedAttributes(attributes: NamedAttributes): EncodeAttributesResult {
  const pairs: [string, AttributeValue][] = [];
  const errors: { name: string; message: string }[] = [];
  dictionary.load_dictionaries();
  for (const [name, value] of Object.entries(attributes)) {
    const values = Array.isArray(value) ? value : [value as AttributeValue];
    if (RESERVED.has(name)) {
      errors.push({ name, message: `${name} is set by the server itself and cannot be configured` });
      continue;
    }
    if (dictionary.attr_name_to_id(name) === undefined) {
      errors.push({ name, message: `unknown attribute "${name}": use a name from the RADIUS dictionary, e.g. Filter-Id, Class, Session-Timeout` });
      continue;
    }
    for (const v of values) {
      try {
        encodeWithRadius([[name, v]]);
        pairs.push([name, v]);
      } catch (err) {
        errors.push({ name, message: `invalid value ${JSON.stringify(v)} for ${name}: ${(err as Error).message.replace(/^en[cv]ode: /, '')}` });
      }
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, bytes: encodeWithRadius(pairs) };
}

function encodeWithRadius(pairs: [string, AttributeValue][]): Buffer {
  const packet = radius.encode({ code: 'Access-Accept', secret: 'x', identifier: 0, authenticator: DUMMY_AUTHENTICATOR, attributes: pairs } as never);
  return packet.subarray(20);
}
