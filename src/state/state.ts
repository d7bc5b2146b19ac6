import type { TotpEnrollment } from '../mfa/enrollment.js';
import type { PendingPushes } from '../mfa/pending.js';
import type { Awaitable } from '../shared/awaitable.js';

/** What a pending Access-Challenge remembers until the next request carries its State back. */
export interface ChallengeRecord {
  username: string;
  clientName: string;
  method: string;
  /** The push this challenge waits on (number matching, or approve-then-Enter). */
  pushId?: string;
  /**
   * What the first factor said, kept for the answer: the State of an upstream RADIUS Access-Challenge
   * (hex), the upstream Access-Accept's reply attributes (hex) and the directory groups.
   */
  firstFactor?: {
    upstreamState?: string;
    reply?: string;
    /** The Request Authenticator (hex) the reply's hidden attributes (MPPE keys, Tunnel-Password) are hidden with. */
    hiddenFor?: string;
    groups?: readonly string[];
  };
  /** Epoch ms after which the State is refused. */
  expires: number;
}

/**
 * Short-lived state shared by every node that answers the same appliances: replay guard,
 * failure counters, challenges. In memory (memory.ts) or Redis (redis.ts); test/state-contract.test.ts holds both to it.
 * What a request asks on every sign-in may answer at once (shared/awaitable.ts): memory does, Redis cannot.
 */
export interface EphemeralState {
  /** Records `step` as used for `username`; false if it (or a later step) was already used: a replay. */
  claimTotpStep(username: string, step: number, ttlMs: number): Awaitable<boolean>;
  /**
   * Counts one event under a security key (a user's failures and attempts in progress, pushes sent to
   * a user); returns the count within the window, which starts at the first. Such a count is kept until
   * its window ends, never evicted to make room: when no room is left the answer is Infinity, so the
   * caller refuses (over any limit) rather than forgets.
   */
  increment(key: string, windowMs: number): Awaitable<number>;
  /** Takes one count back (an attempt slot released); the key is forgotten at zero. */
  decrement(key: string): Awaitable<void>;
  reset(key: string): Awaitable<void>;
  /**
   * Marks `key` until `ttlMs` from now: a source a user signed in from, a wrong password already
   * counted. Kept like the security counts (never evicted early; Infinity-full refuses: false).
   */
  mark(key: string, ttlMs: number): Awaitable<boolean>;
  marked(key: string): Awaitable<boolean>;
  /** Live counts and marks under `prefix` (n = 1 for a mark), with their expiry (epoch ms): what `user show` lists. */
  entries(prefix: string): Promise<{ key: string; n: number; expires: number }[]>;
  /**
   * Counts one event of a source (an address): bounded, so rotating addresses cannot grow it; an
   * evicted source only starts again from zero, and evicts nothing of the security counts.
   */
  countBySource(key: string, windowMs: number): Promise<number>;
  /** A TOTP secret handed out but not yet confirmed by a code from it (an app activation). */
  putEnrollment(key: string, enrollment: TotpEnrollment, ttlMs: number): Promise<void>;
  /** The unconfirmed enrollment, kept (undefined once expired or taken). */
  getEnrollment(key: string): Promise<TotpEnrollment | undefined>;
  deleteEnrollment(key: string): Promise<void>;
  putChallenge(state: string, record: ChallengeRecord): Promise<void>;
  /** Returns and forgets the challenge: a State is good for one answer only. */
  takeChallenge(state: string): Promise<ChallengeRecord | undefined>;
  /**
   * A portal session (serialized by portal/session.ts) under a key derived from its cookie, kept for
   * `ttlMs` from now: a user signed in through one node stays signed in at another. Sealed in Redis
   * (it may hold a TOTP secret being set up). Memory keeps at most a bounded number (least recent go).
   * `existing`: written only if still there, so a request in flight at another node cannot bring back
   * a session signed out meanwhile; otherwise only if not there yet.
   */
  putSession(key: string, session: string, ttlMs: number, existing: boolean): Promise<void>;
  getSession(key: string): Promise<string | undefined>;
  deleteSession(key: string): Promise<void>;
  /**
   * The pending pushes kept with this state: in this process for memory, shared through Redis (with a
   * subscriber connection of their own) for redis. One object per state; closed with it.
   */
  pushes(): PendingPushes;
  /** Asks a shared engine for a sign of life (for /readyz); rejects when it cannot. */
  ping?(): Promise<void>;
  close(): Promise<void>;
}
