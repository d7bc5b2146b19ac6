// Failures count toward a lockout per user (RFC 4226 §7.3 throttling); the one that reaches the limit locks.
// A check that takes time (a password hash, an LDAP bind) runs inside an attempt slot, taken before the
// check: a burst of concurrent guesses gets at most `max_failures` evaluated, and a right guess that
// finishes after the lock landed is still refused (the lock is read again after the check).
import type { Config } from '../config/schema.js';
import type { EphemeralState } from '../state/state.js';
import type { Store, UserRecord } from '../store/store.js';

export interface LockoutDeps {
  config: Config;
  state: EphemeralState;
  store: Store;
}

const failureKey = (username: string) => `fail:${username}`;

export function isLocked(user: UserRecord | undefined, now: number): boolean {
  return user?.lockedUntil != null && user.lockedUntil > now;
}

/** Read from the store, not from a record fetched before an await: a lock may have landed meanwhile. */
export async function isLockedNow(username: string, now: number, deps: LockoutDeps): Promise<boolean> {
  return isLocked(await deps.store.getUser(username), now);
}

/** One attempt's place among the user's failures; exactly one of its three ends is used. */
export interface AttemptSlot {
  /** The check failed: the slot stays as a failure. True when this failure locked the user. */
  fail(reason: string): Promise<boolean>;
  /** The user is signed in: earlier failures are forgotten. */
  succeed(): Promise<void>;
  /** Neither (unknown user, backend down, second factor still to come): the slot is given back. */
  release(): Promise<void>;
}

const NO_LOCKOUT: AttemptSlot = { fail: async () => false, succeed: async () => {}, release: async () => {} };

/**
 * Takes a slot for one attempt of `username`; undefined when failures and attempts in progress
 * already reach the limit (the attempt is then refused without being checked).
 */
export async function takeAttemptSlot(username: string, now: number, deps: LockoutDeps): Promise<AttemptSlot | undefined> {
  const { max_failures, duration } = deps.config.mfa.lockout;
  if (max_failures === 0) return NO_LOCKOUT;
  const key = failureKey(username);
  const taken = await deps.state.increment(key, duration);
  if (taken > max_failures) {
    await deps.state.decrement(key);
    return undefined;
  }
  let used = false;
  const once = () => {
    if (used) throw new Error('bug: an attempt slot was ended twice');
    used = true;
  };
  return {
    async fail(reason) {
      once();
      if (taken < max_failures) return false;
      await lock(username, taken, reason, now, deps);
      return true;
    },
    async succeed() {
      once();
      await deps.state.reset(key);
    },
    async release() {
      once();
      await deps.state.decrement(key);
    },
  };
}

/** Counts one failure outside any slot (a wrong number, a wrong PIN on the phone); true when it locked the user. */
export async function recordFailure(username: string, reason: string, now: number, deps: LockoutDeps): Promise<boolean> {
  const { max_failures, duration } = deps.config.mfa.lockout;
  if (max_failures === 0) return false;
  const count = await deps.state.increment(failureKey(username), duration);
  if (count < max_failures) return false;
  await lock(username, count, reason, now, deps);
  return true;
}

export async function clearFailures(username: string, deps: LockoutDeps): Promise<void> {
  if (deps.config.mfa.lockout.max_failures > 0) await deps.state.reset(failureKey(username));
}

async function lock(username: string, count: number, reason: string, now: number, deps: LockoutDeps): Promise<void> {
  await deps.state.reset(failureKey(username));
  const what = Number.isFinite(count) ? `${count} failed attempts` : 'failed attempts (the failure table is full)';
  await deps.store.lockUser(username, now + deps.config.mfa.lockout.duration, `${what} (last: ${reason})`);
}
