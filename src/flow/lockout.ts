// Failures count toward a lockout per user (RFC 4226 §7.3 throttling); the one that reaches the limit locks.
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

/** Counts one failure; returns true when this failure locked the user. */
export async function recordFailure(username: string, reason: string, now: number, deps: LockoutDeps): Promise<boolean> {
  const { max_failures, duration } = deps.config.mfa.lockout;
  if (max_failures === 0) return false;
  const count = await deps.state.increment(failureKey(username), duration);
  if (count < max_failures) return false;
  await deps.state.reset(failureKey(username));
  await deps.store.lockUser(username, now + duration, `${count} failed attempts (last: ${reason})`);
  return true;
}

export async function clearFailures(username: string, deps: LockoutDeps): Promise<void> {
  if (deps.config.mfa.lockout.max_failures > 0) await deps.state.reset(failureKey(username));
}
