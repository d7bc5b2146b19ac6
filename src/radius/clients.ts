// Which configured client a datagram comes from, by source address (exact IP first, then the most specific CIDR);
// which RADIUS/TLS client a connection comes from, by its verified certificate (RFC 6614 §2.4).
import { BlockList, isIPv4 } from 'node:net';

export interface RadiusClient {
  name: string;
  secret: Buffer;
  requireMessageAuthenticator: boolean;
  /** Reached over RADIUS/TLS: BlastRADIUS does not apply (RFC 6614 §2.4; FreeRADIUS ignores the flag for TLS). */
  tls?: boolean;
}

interface Subnet {
  prefix: number;
  blocks: BlockList;
  client: RadiusClient;
}

export interface ClientTable {
  lookup(address: string): RadiusClient | undefined;
}

/** Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address.toLowerCase();
}

export function buildClientTable(entries: readonly { client: RadiusClient; addresses: readonly string[] }[]): ClientTable {
  const exact = new Map<string, RadiusClient>();
  const subnets: Subnet[] = [];
  for (const { client, addresses } of entries) {
    for (const address of addresses) {
      const [ip, bits] = address.split('/') as [string, string | undefined];
      const family = isIPv4(ip) ? 'ipv4' : 'ipv6';
      const full = family === 'ipv4' ? 32 : 128;
      const prefix = bits === undefined ? full : Number(bits);
      if (prefix === full) {
        exact.set(normalizeAddress(ip), client);
        continue;
      }
      const blocks = new BlockList();
      blocks.addSubnet(ip, prefix, family);
      subnets.push({ prefix, blocks, client });
    }
  }
  subnets.sort((a, b) => b.prefix - a.prefix);
  return {
    lookup(address) {
      const a = normalizeAddress(address);
      const hit = exact.get(a);
      if (hit || subnets.length === 0) return hit;
      const family = isIPv4(a) ? 'ipv4' : 'ipv6';
      for (const s of subnets) if (s.blocks.check(a, family)) return s.client;
      return undefined;
    },
  };
}

/** What a TLS client is known by: the subject CN (exact) or the SHA-256 fingerprint ("AB:CD:..."). */
export type TlsIdentity = { subject: string } | { fingerprint: string };

/** The parts of a verified peer certificate a TLS client is matched on. */
export interface PeerCertificate {
  /** Every CN of the subject (node:tls gives an array when there are several). */
  commonNames: readonly string[];
  /** "AB:CD:..." as node:tls reports fingerprint256. */
  fingerprint256: string;
}

export interface TlsClientTable {
  /** The client whose identity the certificate carries and whose `address` (if any) allows `address`. */
  match(cert: PeerCertificate, address: string): RadiusClient | undefined;
}

export function buildTlsClientTable(entries: readonly { client: RadiusClient; identity: TlsIdentity; addresses?: readonly string[] }[]): TlsClientTable {
  const rows = entries.map((e) => ({ ...e, allowed: e.addresses ? buildClientTable([{ client: e.client, addresses: e.addresses }]) : undefined }));
  return {
    match(cert, address) {
      for (const r of rows) {
        const id = r.identity;
        // A certificate with several CNs is ambiguous: it matches no subject rule.
        const hit = 'subject' in id ? cert.commonNames.length === 1 && `CN=${cert.commonNames[0]}` === id.subject : cert.fingerprint256 === id.fingerprint;
        if (!hit) continue;
        if (r.allowed && !r.allowed.lookup(address)) continue;
        return r.client;
      }
      return undefined;
    },
  };
}
