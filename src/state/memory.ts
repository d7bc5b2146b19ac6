// Ephemeral state in this process's memory: right for one node; Redis takes its place for several.
import { LRUCache } from 'lru-cache';
import { lazy } from '../shared/lazy.js';
import type { TotpEnrollment } from '../mfa/enrollment.js';
import { MemoryPendingPushes, type PendingPushes } from '../mfa/pending.js';
import type { ChallengeRecord, EphemeralState } from './state.js';

// lru-cache reserves its index arrays for `max` up front (1,000,000 cost ~40 MiB each): size for the
// users signing in within a few TOTP periods, not for the whole directory.
const MAX_USERS = 100_000;
const MAX_CHALLENGES = 50_000;
const MAX_SOURCES = 100_000;
/** Portal sessions start after the password step, so only people who know a password fill this. */
const MAX_SESSIONS = 20_000;
/**
 * Security counts are never evicted early, so they need their own bound: ~120 bytes each, 1,000,000
 * is ~120 MiB at most. Reaching it takes a million usernames failing within one lockout window.
 */
export const MAX_SECURITY_COUNTS = 1_000_000;

interface Count {
  n: number;
  expires: number;
}

export class MemoryState implements EphemeralState {
  /** Per user, the last step claimed, in a box: a later claim updates it in place (one cache operation, not two). */
  private readonly lastStep = lazy(() => new LRUCache<string, { step: number }>({ max: MAX_USERS, ttlAutopurge: false }));
  private readonly counts = new Map<string, Count>();
  private readonly sources = lazy(() => new LRUCache<string, number>({ max: MAX_SOURCES, ttlAutopurge: false }));
  private readonly challenges = lazy(() => new LRUCache<string, ChallengeRecord>({ max: MAX_CHALLENGES, ttlAutopurge: false }));
  private readonly enrollments = lazy(() => new LRUCache<string, TotpEnrollment>({ max: MAX_CHALLENGES, ttlAutopurge: false }));
  private readonly sessions = lazy(() => new LRUCache<string, string>({ max: MAX_SESSIONS, ttlAutopurge: false }));
  private pending: MemoryPendingPushes | undefined;

  constructor(
    private readonly now: () => number,
    private readonly maxSecurityCounts = MAX_SECURITY_COUNTS,
  ) {}

  /** The TTL is for stores that need one (Redis); here the LRU bound caps memory and steps only grow. */
  claimTotpStep(username: string, step: number, _ttlMs: number): boolean {
    const last = this.lastStep().get(username);
    // RFC 6238 §5.2: a code is good once; a step at or before the last accepted one is a replay.
    if (last && step <= last.step) return false;
    if (last) last.step = step;
    else this.lastStep().set(username, { step });
    return true;
  }

  increment(key: string, windowMs: number): number {
    const now = this.now();
    const live = this.liveCount(key, now);
    if (live) return ++live.n;
    this.dropExpiredOldest(now);
    if (this.counts.size >= this.maxSecurityCounts && this.sweep(now) >= this.maxSecurityCounts) return Infinity;
    // The window starts at the first event: later ones keep its end.
    this.counts.set(key, { n: 1, expires: now + windowMs });
    return 1;
  }

  decrement(key: string): void {
    const live = this.liveCount(key, this.now());
    if (live && --live.n <= 0) this.counts.delete(key);
  }

  reset(key: string): void {
    this.counts.delete(key);
  }

  mark(key: string, ttlMs: number): boolean {
    const now = this.now();
    const live = this.liveCount(key, now);
    if (live) {
      live.expires = Math.max(live.expires, now + ttlMs);
      return true;
    }
    this.dropExpiredOldest(now);
    if (this.counts.size >= this.maxSecurityCounts && this.sweep(now) >= this.maxSecurityCounts) return false;
    this.counts.set(key, { n: 1, expires: now + ttlMs });
    return true;
  }

  marked(key: string): boolean {
    return this.liveCount(key, this.now()) !== undefined;
  }

  /** A scan of the whole table: for an admin's `user show`, never on the request path. */
  async entries(prefix: string): Promise<{ key: string; n: number; expires: number }[]> {
    const now = this.now();
    const out: { key: string; n: number; expires: number }[] = [];
    for (const [key, c] of this.counts) if (key.startsWith(prefix) && c.expires > now) out.push({ key, n: c.n, expires: c.expires });
    return out;
  }

  async countBySource(key: string, windowMs: number): Promise<number> {
    const count = (this.sources().get(key) ?? 0) + 1;
    const ttl = this.sources().has(key) ? Math.max(1, this.sources().getRemainingTTL(key)) : windowMs;
    this.sources().set(key, count, { ttl });
    return count;
  }

  async putEnrollment(key: string, enrollment: TotpEnrollment, ttlMs: number): Promise<void> {
    this.enrollments().set(key, enrollment, { ttl: Math.max(1, ttlMs) });
  }

  async getEnrollment(key: string): Promise<TotpEnrollment | undefined> {
    return this.enrollments().get(key);
  }

  async deleteEnrollment(key: string): Promise<void> {
    this.enrollments().delete(key);
  }

  async putChallenge(state: string, record: ChallengeRecord): Promise<void> {
    this.challenges().set(state, record, { ttl: Math.max(1, record.expires - this.now()) });
  }

  async takeChallenge(state: string): Promise<ChallengeRecord | undefined> {
    const record = this.challenges().get(state);
    if (record === undefined) return undefined;
    this.challenges().delete(state);
    return record.expires > this.now() ? record : undefined;
  }

  async putSession(key: string, session: string, ttlMs: number, existing: boolean): Promise<void> {
    if (this.sessions().has(key) !== existing) return;
    this.sessions().set(key, session, { ttl: Math.max(1, ttlMs) });
  }

  async getSession(key: string): Promise<string | undefined> {
    return this.sessions().get(key);
  }

  async deleteSession(key: string): Promise<void> {
    this.sessions().delete(key);
  }

  pushes(): PendingPushes {
    return (this.pending ??= new MemoryPendingPushes(this.now));
  }

  async close(): Promise<void> {
    await this.pending?.close();
    this.sessions.peek()?.clear();
    this.lastStep.peek()?.clear();
    this.counts.clear();
    this.sources.peek()?.clear();
    this.challenges.peek()?.clear();
    this.enrollments.peek()?.clear();
  }

  private liveCount(key: string, now: number): Count | undefined {
    const c = this.counts.get(key);
    if (c && c.expires <= now) {
      this.counts.delete(key);
      return undefined;
    }
    return c;
  }

  /**
   * Each new entry looks at a few of the oldest (a Map iterates in insertion order): expired ones are
   * dropped, live ones move to the back (a clock sweep, since windows differ: 15 minutes, 30 days). So
   * the table holds about the live entries only, at a constant cost per insert.
   */
  private dropExpiredOldest(now: number): void {
    let checked = 0;
    for (const [key, c] of this.counts) {
      if (++checked > 4) return;
      this.counts.delete(key);
      if (c.expires > now) this.counts.set(key, c);
    }
  }

  /** Drops every count whose window has ended; returns how many are left. Runs only when the table is full. */
  private sweep(now: number): number {
    for (const [key, c] of this.counts) if (c.expires <= now) this.counts.delete(key);
    return this.counts.size;
  }
}
