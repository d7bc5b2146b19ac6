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
  /** Key -> sequence number of its answered entry (see at()). */
  private readonly answeredByKey = new Map<string, number>();
  // The answered entries in the order they expire, as parallel arrays: no object per entry, because
  // every entry outlives a young-generation GC and each object that survives one makes it dearer.
  // Entry i has sequence number base + i; its reply's bytes are arena[orderAt[i], orderAt[i] + orderLength[i]).
  private readonly order: string[] = [];
  private readonly orderAt: number[] = [];
  private readonly orderLength: number[] = [];
  private readonly orderExpires: number[] = [];
  private head = 0;
  private base = 0;
  /**
   * The replies' bytes, one after the other in a ring, instead of one Buffer object each: written in
   * expiry order, so the oldest are overwritten first. Only replies of at most ARENA_BYTES_PER_ENTRY go
   * here, and the ring has room for maxEntries of them and a wrap: the entry bound, never the ring,
   * decides when an answer is forgotten before its window ends.
   */
  private readonly arena: Buffer;
  private tail = 0;
  /**
   * Replies too long for the ring (relayed EAP, long prompts: rare), by sequence number, as their own
   * copies; their orderAt is -1. In the ring they would overwrite answers still within their window.
   */
  private readonly spilled = new Map<number, Buffer>();
  /** Sequence number from which oldestInArena looks: every entry before it is spilled or gone. */
  private arenaScan = 0;
  private inFlightSwept = -Infinity;

  constructor(private readonly options: DedupeOptions) {
    this.arena = Buffer.allocUnsafeSlow((options.maxEntries + 1) * ARENA_BYTES_PER_ENTRY);
  }

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
    const seq = this.answeredByKey.get(key);
    if (seq !== undefined) {
      // A copy (retransmissions are rare): the arena's bytes may be overwritten before a TLS write is done with them.
      const i = seq - this.base;
      const reply = this.orderAt[i] === SPILLED ? this.spilled.get(seq)! : Buffer.from(this.arena.subarray(this.orderAt[i]!, this.orderAt[i]! + this.orderLength[i]!));
      return { kind: 'answered', reply };
    }
    const since = this.inFlight.get(key);
    if (since !== undefined) {
      if (now - since < this.options.inFlightMs) return IN_FLIGHT;
      // Forgotten undecided (its sweep is yet to come): re-inserted last, so the map stays in time order.
      this.inFlight.delete(key);
    }
    // More undecided requests than the bound: refuse new work rather than grow without limit.
    if (this.inFlight.size >= this.options.maxEntries) return OVERLOADED;
    this.inFlight.set(key, now);
    return NEW;
  }

  /** Keeps a copy of `reply` for the window: the caller may reuse its Buffer. */
  answered(key: string, reply: Buffer): void {
    this.inFlight.delete(key);
    if (this.answeredByKey.size >= this.options.maxEntries) this.evictOldest();
    const seq = this.base + this.order.length;
    let at = SPILLED;
    if (reply.length > ARENA_BYTES_PER_ENTRY) this.spilled.set(seq, Buffer.from(reply));
    else reply.copy(this.arena, (at = this.place(reply.length)));
    this.answeredByKey.set(key, seq);
    this.order.push(key);
    this.orderAt.push(at);
    this.orderLength.push(reply.length);
    this.orderExpires.push(this.options.now() + this.options.windowMs);
  }

  /** Forgets a request that got no answer, so that the client's retransmission is decided afresh. */
  abandon(key: string): void {
    this.inFlight.delete(key);
  }

  get size(): number {
    return this.inFlight.size + this.answeredByKey.size;
  }

  /**
   * Where `length` bytes go in the arena: after the newest reply, or at 0. Replies still in the way are
   * past the entry bound already (the ring has room for maxEntries), so they go, and whatever is older.
   */
  private place(length: number): number {
    let at = this.tail;
    if (at + length > this.arena.length) {
      // Wrapping: the replies between the tail and the end are the oldest; they go first.
      for (let i = this.oldestInArena(); i >= 0 && this.orderAt[i]! >= at; i = this.oldestInArena()) this.dropThrough(i);
      at = 0;
    }
    for (let i = this.oldestInArena(); i >= 0 && this.orderAt[i]! < at + length && this.orderAt[i]! + this.orderLength[i]! > at; i = this.oldestInArena()) this.dropThrough(i);
    this.compact();
    this.tail = at + length;
    return at;
  }

  /**
   * The oldest queued answer whose reply is in the arena (spilled ones are skipped), or -1. The scan
   * resumes where the last one stopped (a sequence number): spilled entries are passed once, not on
   * every answer, so replies that are mostly spilled (EAP) cost no scan of the queue per request.
   */
  private oldestInArena(): number {
    let i = Math.max(this.head, this.arenaScan - this.base);
    while (i < this.order.length && this.orderAt[i] === SPILLED) i++;
    this.arenaScan = this.base + i;
    return i < this.order.length ? i : -1;
  }

  private dropThrough(i: number): void {
    while (this.head <= i) this.dropHead();
  }

  private expire(now: number): void {
    // Undecided requests are forgotten after minutes, so once a second is sweep enough (begin() reads an
    // entry's age itself), and the request path makes no iterator per request.
    if (now - this.inFlightSwept >= IN_FLIGHT_SWEEP_MS) {
      this.inFlightSwept = now;
      // Maps iterate in insertion order and entries are inserted with a growing time: the oldest come first.
      for (const [key, since] of this.inFlight) {
        if (now - since < this.options.inFlightMs) break;
        this.inFlight.delete(key);
      }
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
    const seq = this.base + this.head;
    if (this.answeredByKey.get(key) === seq) this.answeredByKey.delete(key);
    if (this.orderAt[this.head] === SPILLED) this.spilled.delete(seq);
    this.head++;
  }

  /** Drops the consumed front of the queue once it is most of the arrays. */
  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order.splice(0, this.head);
      this.orderAt.splice(0, this.head);
      this.orderLength.splice(0, this.head);
      this.orderExpires.splice(0, this.head);
      this.base += this.head;
      this.head = 0;
    }
  }
}

/** Arena bytes per entry of maxEntries: a reply with Message-Authenticator and a Reply-Message is 60-120 bytes. */
const ARENA_BYTES_PER_ENTRY = 128;
/** How often undecided requests past inFlightMs are swept out. */
const IN_FLIGHT_SWEEP_MS = 1000;
/** orderAt of a reply kept in `spilled`. */
const SPILLED = -1;

/** Scratch for building keys: listener, identifier, port, Request Authenticator, then the address text. */
const KEY = Buffer.alloc(20 + 64);
const NEW: DuplicateStatus = { kind: 'new' };
const IN_FLIGHT: DuplicateStatus = { kind: 'in_flight' };
const OVERLOADED: DuplicateStatus = { kind: 'overloaded' };
