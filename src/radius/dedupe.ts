// Duplicate detection (RFC 5080 §2.2.2): a retransmission has the same source, Identifier and Request
// Authenticator. While the first copy is decided, copies are dropped; once answered, the cached reply is re-sent.
// Every answered entry lives for the same window, so insertion order is expiry order: a FIFO queue
// expires them in O(1), with no per-entry timer (this runs for every request).

export type DuplicateStatus = { kind: 'new' } | { kind: 'in_flight' } | { kind: 'answered'; reply: Buffer } | { kind: 'overloaded' };

export interface DedupeOptions {
  /** How long an answered request's reply is kept for retransmissions. */
  windowMs: number;
  /** Bound on answered entries (the oldest go first) and, separately, on requests being decided. */
  maxEntries: number;
  /** How long a request may stay undecided before its entry is forgotten (a held push lasts up to minutes). */
  inFlightMs: number;
  now: () => number;
}

export class DedupeCache {
  private readonly inFlight = new Map<string, number>();
  private readonly answeredByKey = new Map<string, Buffer>();
  // The answered entries in the order they expire, as parallel arrays: no object per entry, because
  // every entry outlives a young-generation GC and each object that survives one makes it dearer.
  private readonly order: string[] = [];
  private readonly orderReply: Buffer[] = [];
  private readonly orderExpires: number[] = [];
  private head = 0;

  constructor(private readonly options: DedupeOptions) {}

  /** One flat string (a single heap object, unlike a template literal's chain of parts) per request. */
  static key(listener: number, address: string, port: number, identifier: number, authenticator: Buffer): string {
    const k = KEY;
    k[0] = listener;
    k[1] = identifier;
    k[2] = port >>> 8;
    k[3] = port & 0xff;
    authenticator.copy(k, 4, 0, 16);
    const length = 20 + k.write(address, 20, 'latin1');
    return k.toString('latin1', 0, length);
  }

  /** Looks the request up and, when new, marks it in flight: one decision per request. */
  begin(key: string): DuplicateStatus {
    const now = this.options.now();
    this.expire(now);
    const reply = this.answeredByKey.get(key);
    if (reply) return { kind: 'answered', reply };
    const since = this.inFlight.get(key);
    if (since !== undefined && now - since < this.options.inFlightMs) return IN_FLIGHT;
    // More undecided requests than the bound: refuse new work rather than grow without limit.
    if (this.inFlight.size >= this.options.maxEntries) return OVERLOADED;
    this.inFlight.delete(key);
    this.inFlight.set(key, now);
    return NEW;
  }

  answered(key: string, reply: Buffer): void {
    this.inFlight.delete(key);
    if (this.answeredByKey.size >= this.options.maxEntries) this.evictOldest();
    this.answeredByKey.set(key, reply);
    this.order.push(key);
    this.orderReply.push(reply);
    this.orderExpires.push(this.options.now() + this.options.windowMs);
  }

  /** Forgets a request that got no answer, so that the client's retransmission is decided afresh. */
  abandon(key: string): void {
    this.inFlight.delete(key);
  }

  get size(): number {
    return this.inFlight.size + this.answeredByKey.size;
  }

  private expire(now: number): void {
    // Maps iterate in insertion order and entries are inserted with a growing time: the oldest come first.
    for (const [key, since] of this.inFlight) {
      if (now - since < this.options.inFlightMs) break;
      this.inFlight.delete(key);
    }
    while (this.head < this.order.length && this.orderExpires[this.head]! <= now) this.dropHead();
    this.compact();
  }

  private evictOldest(): void {
    const size = this.answeredByKey.size;
    while (this.head < this.order.length && this.answeredByKey.size === size) this.dropHead();
    this.compact();
  }

  /** Forgets the oldest queued answer, unless its key was answered again since (a later entry holds it). */
  private dropHead(): void {
    const key = this.order[this.head]!;
    if (this.answeredByKey.get(key) === this.orderReply[this.head]) this.answeredByKey.delete(key);
    this.head++;
  }

  /** Drops the consumed front of the queue once it is most of the arrays. */
  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order.splice(0, this.head);
      this.orderReply.splice(0, this.head);
      this.orderExpires.splice(0, this.head);
      this.head = 0;
    }
  }
}

/** Scratch for building keys: listener, identifier, port, Request Authenticator, then the address text. */
const KEY = Buffer.alloc(20 + 64);
const NEW: DuplicateStatus = { kind: 'new' };
const IN_FLIGHT: DuplicateStatus = { kind: 'in_flight' };
const OVERLOADED: DuplicateStatus = { kind: 'overloaded' };
