// Which configured client a datagram comes from, by source address (exact IP first, then the most specific CIDR).
import { BlockList, isIPv4 } from 'node:net';

export interface RadiusClient {
  name: string;
  secret: Buffer;
  requireMessageAuthenticator: boolean;
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
