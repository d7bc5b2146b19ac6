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

interface Answered {
  reply: Buffer;
  expires: number;
}

export class DedupeCache {
  private readonly inFlight = new Map<string, number>();
  private readonly answeredByKey = new Map<string, Answered>();
  private readonly order: string[] = [];
  private head = 0;

  constructor(private readonly options: DedupeOptions) {}

  static key(listener: number, address: string, port: number, identifier: number, authenticator: Buffer): string {
    return `${listener}|${address}|${port}|${identifier}|${authenticator.toString('latin1')}`;
  }

  /** Looks the request up and, when new, marks it in flight: one decision per request. */
  begin(key: string): DuplicateStatus {
    const now = this.options.now();
    this.expire(now);
    const answered = this.answeredByKey.get(key);
    if (answered) return { kind: 'answered', reply: answered.reply };
    const since = this.inFlight.get(key);
    if (since !== undefined && now - since < this.options.inFlightMs) return { kind: 'in_flight' };
    // More undecided requests than the bound: refuse new work rather than grow without limit.
    if (this.inFlight.size >= this.options.maxEntries) return { kind: 'overloaded' };
    this.inFlight.delete(key);
    this.inFlight.set(key, now);
    return { kind: 'new' };
  }

  answered(key: string, reply: Buffer): void {
    this.inFlight.delete(key);
    if (this.answeredByKey.size >= this.options.maxEntries) this.evictOldest();
    if (!this.answeredByKey.has(key)) this.order.push(key);
    this.answeredByKey.set(key, { reply, expires: this.options.now() + this.options.windowMs });
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
    while (this.head < this.order.length) {
      const key = this.order[this.head]!;
      const entry = this.answeredByKey.get(key);
      if (entry && entry.expires > now) break;
      if (entry) this.answeredByKey.delete(key);
      this.head++;
    }
    this.compact();
  }

  private evictOldest(): void {
    while (this.head < this.order.length) {
      const key = this.order[this.head++]!;
      if (this.answeredByKey.delete(key)) break;
    }
    this.compact();
  }

  /** Drops the consumed front of the queue once it is most of the array. */
  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order.splice(0, this.head);
      this.head = 0;
    }
  }
}
