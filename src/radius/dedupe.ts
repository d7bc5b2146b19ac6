// Duplicate detection (RFC 5080 §2.2.2): a retransmission has the same source, Identifier and Request
// Authenticator. While the first copy is decided, copies are dropped; once answered, the cached reply is re-sent.
import { LRUCache } from 'lru-cache';

/** In-flight marker: an entry without reply bytes. */
const IN_FLIGHT: Buffer = Buffer.alloc(0);

export type DuplicateStatus = { kind: 'new' } | { kind: 'in_flight' } | { kind: 'answered'; reply: Buffer };

export interface DedupeOptions {
  /** How long an answered request's reply is kept for retransmissions. */
  windowMs: number;
  maxEntries: number;
  /** How long a request may stay undecided before its entry is forgotten (a held push lasts up to minutes). */
  inFlightMs: number;
}

export class DedupeCache {
  private readonly cache: LRUCache<string, Buffer>;

  constructor(private readonly options: DedupeOptions) {
    this.cache = new LRUCache<string, Buffer>({ max: options.maxEntries, ttl: options.windowMs, ttlAutopurge: false });
  }

  static key(listener: number, address: string, port: number, identifier: number, authenticator: Buffer): string {
    return `${listener}|${address}|${port}|${identifier}|${authenticator.toString('latin1')}`;
  }

  /** Looks the request up and, when new, marks it in flight: one decision per request. */
  begin(key: string): DuplicateStatus {
    const hit = this.cache.get(key);
    if (hit === undefined) {
      this.cache.set(key, IN_FLIGHT, { ttl: this.options.inFlightMs });
      return { kind: 'new' };
    }
    return hit === IN_FLIGHT ? { kind: 'in_flight' } : { kind: 'answered', reply: hit };
  }

  answered(key: string, reply: Buffer): void {
    this.cache.set(key, reply, { ttl: this.options.windowMs });
  }

  /** Forgets a request that got no answer, so that the client's retransmission is decided afresh. */
  abandon(key: string): void {
    this.cache.delete(key);
  }

  get size(): number {
    return this.cache.size;
  }
}
