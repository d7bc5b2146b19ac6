// Duplicate detection (RFC 5080 §2.2.2): a retransmission has the same source, Identifier and Request
// Authenticator. While the first copy is decided, copies are dropped; once answered, the cached reply is re-sent.
//
// This runs for every request, and every entry outlives a young-generation GC. So the table holds no
// JavaScript object per entry: keys, chains and times live in typed arrays indexed by entry number, and
// replies in one byte ring. (A Map keyed by strings made one string per request survive into the old
// generation: the whole dedupe then cost a fifth of the request path, most of it in GC.)
// Every answered entry lives for the same window, so insertion order is expiry order: a FIFO queue
// expires them in O(1), with no per-entry timer.
import { randomFillSync } from 'node:crypto';
import type { Peer } from './udp-socket.js';

export type DuplicateStatus = { kind: 'new'; ticket: number } | { kind: 'in_flight' } | { kind: 'answered'; reply: Buffer } | { kind: 'overloaded' };

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
  // Entry e: key words keys[e * KEY_WORDS ...], bucket chain link (next entry + 1, 0 = end), state, and
  // its time (in flight: since; answered: expiry). Free entries are chained through `chain` too.
  private readonly keys: Int32Array;
  /** Each entry's hash, kept: find() passes other keys by it before comparing words, release() finds the bucket. */
  private readonly hashes: Int32Array;
  private readonly chain: Int32Array;
  private readonly state: Uint8Array;
  private readonly time: Float64Array;
  /** Bumped when an entry is freed or decided afresh: a ticket of its earlier use no longer matches. */
  private readonly generation: Int32Array;
  /** First entry + 1 of each bucket (0 = empty), indexed by the hash's top bits. */
  private readonly buckets: Int32Array;
  private readonly bucketShift: number;
  /** Random odd multipliers, one per key word: the hash is keyed, so nobody outside can aim at a bucket. */
  private readonly multipliers = new Int32Array(KEY_WORDS);
  private unused = 0;
  private freeList = 0;
  private inFlight = 0;

  // The answered entries in the order they expire: a ring of entry numbers, by sequence number (the
  // ring's slot is seq % maxEntries). Their replies' bytes are arena[replyAt[e], replyAt[e] + replyLength[e]).
  private readonly order: Int32Array;
  private readonly replyAt: Int32Array;
  private readonly replyLength: Int32Array;
  private first = 0;
  private end = 0;
  /**
   * The replies' bytes, one after the other in a ring, instead of one Buffer object each: written in
   * expiry order, so the oldest are overwritten first. Only replies of at most ARENA_BYTES_PER_ENTRY go
   * here, and the ring has room for maxEntries of them and a wrap: the entry bound, never the ring,
   * decides when an answer is forgotten before its window ends.
   */
  private readonly arena: Buffer;
  private tail = 0;
  /**
   * Replies too long for the ring (relayed EAP, long prompts: rare), by entry, as their own copies; their
   * replyAt is -1. In the ring they would overwrite answers still within their window.
   */
  private readonly spilled = new Map<number, Buffer>();
  /** Sequence number from which oldestInArena looks: every entry before it is spilled or gone. */
  private arenaScan = 0;
  private inFlightSwept = -Infinity;

  constructor(private readonly options: DedupeOptions) {
    const { maxEntries } = options;
    if (maxEntries * 2 > MAX_POOL) throw new RangeError(`dedupe max entries ${maxEntries}: at most ${MAX_POOL / 2}`);
    // At most maxEntries answered and maxEntries in flight. Typed arrays are zero pages until written:
    // memory is taken as entries are first used.
    const pool = maxEntries * 2;
    this.keys = new Int32Array(pool * KEY_WORDS);
    this.hashes = new Int32Array(pool);
    this.chain = new Int32Array(pool);
    this.state = new Uint8Array(pool);
    this.time = new Float64Array(pool);
    this.generation = new Int32Array(pool);
    this.replyAt = new Int32Array(pool);
    this.replyLength = new Int32Array(pool);
    this.order = new Int32Array(maxEntries);
    const bits = Math.max(4, Math.ceil(Math.log2(pool)));
    this.buckets = new Int32Array(2 ** bits);
    this.bucketShift = 32 - bits;
    randomFillSync(this.multipliers);
    for (let i = 0; i < KEY_WORDS; i++) this.multipliers[i]! |= 1;
    this.arena = Buffer.allocUnsafeSlow((maxEntries + 1) * ARENA_BYTES_PER_ENTRY);
  }

  /** Looks the request up and, when new, marks it in flight: one decision per request, named by its ticket. */
  begin(listener: number, source: Peer, identifier: number, authenticator: Buffer): DuplicateStatus {
    const now = this.options.now();
    this.expire(now);
    const hash = this.loadKey(listener, source, identifier, authenticator);
    const e = this.find(hash);
    if (e >= 0) {
      if (this.state[e] === ANSWERED) return { kind: 'answered', reply: this.replyOf(e) };
      if (now - this.time[e]! < this.options.inFlightMs) return IN_FLIGHT;
      // Forgotten undecided (its sweep is yet to come): decided afresh; the first decision's answer is not kept.
      this.time[e] = now;
      this.generation[e]!++;
      return { kind: 'new', ticket: this.ticketOf(e) };
    }
    // More undecided requests than the bound: refuse new work rather than grow without limit.
    if (this.inFlight >= this.options.maxEntries) return OVERLOADED;
    const n = this.allocate(hash);
    this.state[n] = DECIDING;
    this.time[n] = now;
    this.inFlight++;
    return { kind: 'new', ticket: this.ticketOf(n) };
  }

  /** Keeps a copy of `reply` for the window (the caller may reuse its Buffer); a stale ticket keeps nothing. */
  answered(ticket: number, reply: Buffer): void {
    const e = this.inFlightEntry(ticket);
    if (e < 0) return;
    this.inFlight--;
    if (this.end - this.first >= this.options.maxEntries) this.dropHead();
    let at = SPILLED;
    if (reply.length > ARENA_BYTES_PER_ENTRY) this.spilled.set(e, Buffer.from(reply));
    else reply.copy(this.arena, (at = this.place(reply.length)));
    this.state[e] = ANSWERED;
    this.time[e] = this.options.now() + this.options.windowMs;
    this.replyAt[e] = at;
    this.replyLength[e] = reply.length;
    this.order[this.end++ % this.options.maxEntries] = e;
  }

  /**
   * Writes the Request Authenticator of the request a ticket names into `out` (16 octets), from its key:
   * a request held for a phone then keeps no view of its datagram. False when the ticket is stale.
   */
  requestAuthenticator(ticket: number, out: Buffer): boolean {
    const e = this.inFlightEntry(ticket);
    if (e < 0) return false;
    const at = e * KEY_WORDS + 1;
    for (let i = 0; i < 4; i++) out.writeInt32LE(this.keys[at + i]!, 4 * i);
    return true;
  }

  /** Forgets a request that got no answer, so that the client's retransmission is decided afresh. */
  abandon(ticket: number): void {
    const e = this.inFlightEntry(ticket);
    if (e < 0) return;
    this.inFlight--;
    this.release(e);
  }

  get size(): number {
    return this.inFlight + this.end - this.first;
  }

  /** Writes the request's key into KEY and returns its hash. */
  private loadKey(listener: number, source: Peer, identifier: number, authenticator: Buffer): number {
    const k = KEY;
    k[0] = listener | (identifier << 8) | (source.port << 16);
    k[1] = authenticator.readInt32LE(0);
    k[2] = authenticator.readInt32LE(4);
    k[3] = authenticator.readInt32LE(8);
    k[4] = authenticator.readInt32LE(12);
    k[5] = source.family;
    const v6 = source.ipv6;
    if (v6) {
      k[6] = source.scopeId;
      k[7] = v6.readInt32LE(0);
      k[8] = v6.readInt32LE(4);
      k[9] = v6.readInt32LE(8);
      k[10] = v6.readInt32LE(12);
    } else {
      k[6] = k[7] = k[8] = k[9] = 0;
      k[10] = source.ipv4;
    }
    // Multilinear hashing, read from the top bits (multiply-shift): only keys that differ in the top bit
    // of two words collide whatever the multipliers, so chains stay short.
    const m = this.multipliers;
    let h = 0;
    for (let i = 0; i < KEY_WORDS; i++) h = (h + Math.imul(k[i]!, m[i]!)) | 0;
    return h;
  }

  private find(hash: number): number {
    const { keys, hashes, chain } = this;
    for (let e = this.buckets[hash >>> this.bucketShift]! - 1; e >= 0; e = chain[e]! - 1) {
      if (hashes[e] !== hash) continue;
      let w = 0;
      const at = e * KEY_WORDS;
      while (w < KEY_WORDS && keys[at + w] === KEY[w]) w++;
      if (w === KEY_WORDS) return e;
    }
    return -1;
  }

  /** A free entry holding KEY, linked at the head of its bucket. */
  private allocate(hash: number): number {
    let e = this.freeList - 1;
    if (e >= 0) this.freeList = this.chain[e]!;
    else e = this.unused++;
    this.keys.set(KEY, e * KEY_WORDS);
    this.hashes[e] = hash;
    const b = hash >>> this.bucketShift;
    this.chain[e] = this.buckets[b]!;
    this.buckets[b] = e + 1;
    return e;
  }

  /** Unlinks an entry from its bucket and puts it on the free list; tickets to it go stale. */
  private release(e: number): void {
    const b = this.hashes[e]! >>> this.bucketShift;
    if (this.buckets[b] === e + 1) this.buckets[b] = this.chain[e]!;
    else {
      let p = this.buckets[b]! - 1;
      while (p >= 0 && this.chain[p] !== e + 1) p = this.chain[p]! - 1;
      // A bug, never a datagram's doing: fail this request (logged by the server) rather than loop forever.
      if (p < 0) throw new Error(`bug: dedupe entry ${e} is not in its bucket`);
      this.chain[p] = this.chain[e]!;
    }
    this.state[e] = FREE;
    this.generation[e]!++;
    this.chain[e] = this.freeList;
    this.freeList = e + 1;
  }

  private ticketOf(e: number): number {
    return (this.generation[e]! & GENERATION_MASK) * MAX_POOL + e;
  }

  /** The entry a ticket names, if it is still that request and still in flight; else -1. */
  private inFlightEntry(ticket: number): number {
    const e = ticket % MAX_POOL;
    const matches = e < this.unused && this.state[e] === DECIDING && (this.generation[e]! & GENERATION_MASK) === Math.floor(ticket / MAX_POOL);
    return matches ? e : -1;
  }

  private replyOf(e: number): Buffer {
    // A copy (retransmissions are rare): the arena's bytes may be overwritten before a TLS write is done with them.
    const at = this.replyAt[e]!;
    return at === SPILLED ? this.spilled.get(e)! : Buffer.from(this.arena.subarray(at, at + this.replyLength[e]!));
  }

  /**
   * Where `length` bytes go in the arena: after the newest reply, or at 0. Replies still in the way are
   * past the entry bound already (the ring has room for maxEntries), so they go, and whatever is older.
   */
  private place(length: number): number {
    let at = this.tail;
    if (at + length > this.arena.length) {
      // Wrapping: the replies between the tail and the end are the oldest; they go first.
      for (let e = this.oldestInArena(); e >= 0 && this.replyAt[e]! >= at; e = this.oldestInArena()) this.dropThroughScan();
      at = 0;
    }
    for (let e = this.oldestInArena(); e >= 0 && this.replyAt[e]! < at + length && this.replyAt[e]! + this.replyLength[e]! > at; e = this.oldestInArena()) this.dropThroughScan();
    this.tail = at + length;
    return at;
  }

  /**
   * The oldest queued answer whose reply is in the arena (spilled ones are skipped), or -1; arenaScan is
   * left at its sequence number. The scan resumes where the last one stopped: spilled entries are passed
   * once, not on every answer, so replies that are mostly spilled (EAP) cost no scan of the queue per request.
   */
  private oldestInArena(): number {
    let seq = Math.max(this.first, this.arenaScan);
    while (seq < this.end && this.replyAt[this.entryAt(seq)] === SPILLED) seq++;
    this.arenaScan = seq;
    return seq < this.end ? this.entryAt(seq) : -1;
  }

  /** Drops the queued answers up to and including the one oldestInArena found. */
  private dropThroughScan(): void {
    while (this.first <= this.arenaScan) this.dropHead();
  }

  private entryAt(seq: number): number {
    return this.order[seq % this.options.maxEntries]!;
  }

  private expire(now: number): void {
    // Undecided requests are forgotten after minutes, so once a second is sweep enough (begin() reads an
    // entry's age itself): a pass over the entries used so far, with no structure kept per request for it.
    if (now - this.inFlightSwept >= IN_FLIGHT_SWEEP_MS) {
      this.inFlightSwept = now;
      for (let e = 0; e < this.unused && this.inFlight > 0; e++) {
        if (this.state[e] === DECIDING && now - this.time[e]! >= this.options.inFlightMs) {
          this.inFlight--;
          this.release(e);
        }
      }
    }
    while (this.first < this.end && this.time[this.entryAt(this.first)]! <= now) this.dropHead();
  }

  /** Forgets the oldest queued answer. */
  private dropHead(): void {
    const e = this.entryAt(this.first++);
    if (this.replyAt[e] === SPILLED) this.spilled.delete(e);
    this.release(e);
  }
}

/** Arena bytes per entry of maxEntries: a reply with Message-Authenticator and a Reply-Message is 60-120 bytes. */
const ARENA_BYTES_PER_ENTRY = 128;
/** How often undecided requests past inFlightMs are swept out. */
const IN_FLIGHT_SWEEP_MS = 1000;
/** replyAt of a reply kept in `spilled`. */
const SPILLED = -1;
/** Entries (2 x dedupe.max_entries, at most 4,000,000 each) and the ticket's generation share one safe integer. */
const MAX_POOL = 2 ** 23;
const GENERATION_MASK = 2 ** 29 - 1;

const FREE = 0;
const DECIDING = 1;
const ANSWERED = 2;

/**
 * A key: listener | identifier << 8 | port << 16, the Request Authenticator (4 words), the address
 * family, the IPv6 scope id, and the address (IPv4 in the last word).
 */
const KEY_WORDS = 11;
const KEY = new Int32Array(KEY_WORDS);
const IN_FLIGHT: DuplicateStatus = { kind: 'in_flight' };
const OVERLOADED: DuplicateStatus = { kind: 'overloaded' };
