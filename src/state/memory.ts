// Ephemeral state in this process's memory: right for one node; Redis takes its place for several.
import { LRUCache } from 'lru-cache';
import type { ChallengeRecord, EphemeralState } from './state.js';

// lru-cache reserves its index arrays for `max` up front (1,000,000 cost ~40 MiB each): size for the
// users signing in within a few TOTP periods, not for the whole directory.
const MAX_USERS = 100_000;
const MAX_CHALLENGES = 50_000;

export class MemoryState implements EphemeralState {
  private readonly lastStep = new LRUCache<string, number>({ max: MAX_USERS, ttlAutopurge: false });
  private readonly counters = new LRUCache<string, number>({ max: MAX_USERS, ttlAutopurge: false });
  private readonly challenges = new LRUCache<string, ChallengeRecord>({ max: MAX_CHALLENGES, ttlAutopurge: false });

  constructor(private readonly now: () => number) {}

  /** The TTL is for stores that need one (Redis); here the LRU bound caps memory and steps only grow. */
  async claimTotpStep(username: string, step: number, _ttlMs: number): Promise<boolean> {
    const last = this.lastStep.get(username);
    // RFC 6238 §5.2: a code is good once; a step at or before the last accepted one is a replay.
    if (last !== undefined && step <= last) return false;
    this.lastStep.set(username, step);
    return true;
  }

  async increment(key: string, windowMs: number): Promise<number> {
    const count = (this.counters.get(key) ?? 0) + 1;
    // The window starts at the first event: later ones keep its remaining time.
    const ttl = this.counters.has(key) ? Math.max(1, this.counters.getRemainingTTL(key)) : windowMs;
    this.counters.set(key, count, { ttl });
    return count;
  }

  async reset(key: string): Promise<void> {
    this.counters.delete(key);
  }

  async putChallenge(state: string, record: ChallengeRecord): Promise<void> {
    this.challenges.set(state, record, { ttl: Math.max(1, record.expires - this.now()) });
  }

  async takeChallenge(state: string): Promise<ChallengeRecord | undefined> {
    const record = this.challenges.get(state);
    if (record === undefined) return undefined;
    this.challenges.delete(state);
    return record.expires > this.now() ? record : undefined;
  }

  async close(): Promise<void> {
    this.lastStep.clear();
    this.counters.clear();
    this.challenges.clear();
  }
}
