// Smart lockout (RFC 4226 §7.3 throttling, and better than a plain count: docs/security.md).
// - Failures lock the user only for sources they never signed in from: a spray from elsewhere cannot
//   lock them out of their usual place. A source stays familiar for `familiar_for` after a sign-in.
// - At a familiar source, failures count for that source; reaching the limit, it loses its place.
// - A wrong second factor after a right password counts twice from a stranger (a stolen password?).
// - The same wrong password again counts once (a NAS retry, a user retyping it): a keyed hash of it is
//   kept for the lockout window, never the password.
// An expensive check (a hash, a bind, a code) runs inside an attempt slot, taken before the check: a
// burst of parallel guesses gets at most `max_failures` evaluated, and a lock that lands meanwhile is
// read again after the check.
import { createHmac, randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { allDone, then, type Awaitable } from '../shared/awaitable.js';
import type { EphemeralState } from '../state/state.js';
import type { LockScope, Store, UserRecord } from '../store/store.js';
import type { RejectReason } from './decision.js';

/** Why an attempt counted as a failure: a refusal's reason, or a wrong PIN (which refuses only the phone's answer). */
export type FailureReason = RejectReason | 'wrong_pin';

export interface LockoutDeps {
  /** mfa.lockout, read per call: a reload takes effect at once. */
  settings: { lockout: Config['mfa']['lockout'] };
  state: EphemeralState;
  store: Store;
  /** Told of every lock this module sets (metrics, a warn line); the flow knows nothing of either. */
  onLock?: (event: LockEvent) => void;
}

/** unfamiliar: failures from strangers; familiar_source: a familiar source reached the limit and lost its place. */
export interface LockEvent {
  username: string;
  source: string;
  kind: 'unfamiliar' | 'familiar_source';
  reason: FailureReason;
  until: number;
}

/** Where an attempt comes from: Calling-Station-Id, else NAS-IP-Address, else the client; at the portal the browser's address. */
export interface Where {
  source: string;
  /** The user signed in from this source within `familiar_for`. */
  familiar: boolean;
}

/** Every key of a user starts so: `user unlock` forgets them all at once. */
const userPrefix = (username: string) => `user:${username}\0`;
const strangersKey = (username: string) => `${userPrefix(username)}fail`;
const familiarFailureKey = (username: string, source: string) => `${userPrefix(username)}fail\0${source}`;
const failureKey = (username: string, where: Where) => (where.familiar ? familiarFailureKey(username, where.source) : strangersKey(username));
const familiarKey = (username: string, source: string) => `${userPrefix(username)}seen\0${source}`;

/** Keyed per process: a wrong password is remembered only as this HMAC, and only for the lockout window. */
const wrongPasswordKeyring = randomBytes(32);
const wrongPasswordKey = (username: string, password: string) =>
  `${userPrefix(username)}wrong\0${createHmac('sha256', wrongPasswordKeyring).update(username).update('\0').update(password).digest('base64url')}`;

// What runs on every sign-in answers at once when the state does (memory): Awaitable, not async.
export function whereFrom(username: string, source: string, deps: LockoutDeps): Awaitable<Where> {
  // Only signedIn makes a source familiar, and not with lockout off: no read then (a round trip with Redis).
  if (deps.settings.lockout.max_failures === 0) return { source, familiar: false };
  return then(deps.state.marked(familiarKey(username, source)), (familiar) => ({ source, familiar }));
}

/** A fraud or admin lock holds everywhere; a lock from failures only where the user is a stranger. */
export function isLocked(user: UserRecord | undefined, now: number, where?: Where): boolean {
  if (user?.lockedUntil == null || user.lockedUntil <= now) return false;
  return user.lockScope !== 'unfamiliar' || !where?.familiar;
}

/** Read from the store, not from a record fetched before an await: a lock may have landed meanwhile. */
export function isLockedNow(username: string, now: number, deps: LockoutDeps, where?: Where): Awaitable<boolean> {
  return then(deps.store.getUser(username), (user) => isLocked(user, now, where));
}

/** True when this exact wrong password was already counted for the user: answer it without a new check or count. */
export function isKnownWrongPassword(username: string, password: string, deps: LockoutDeps): Awaitable<boolean> {
  return deps.settings.lockout.max_failures > 0 && deps.state.marked(wrongPasswordKey(username, password));
}

/** One attempt's place among the user's failures; exactly one of its three ends is used. */
export interface AttemptSlot {
  /**
   * The check failed: the slot stays as a failure. `wrongPassword` is remembered so that sending it
   * again counts once; `afterRightPassword` (a wrong code) counts twice from a stranger. True when
   * this failure locked the user.
   */
  fail(reason: FailureReason, how?: { wrongPassword?: string; afterRightPassword?: boolean }): Awaitable<boolean>;
  /** The check passed and completes the sign-in: the count is forgotten (signedIn then makes the source familiar). */
  succeed(): Awaitable<void>;
  /** Neither (unknown user, backend down, second factor still to come): the slot is given back. */
  release(): Awaitable<void>;
  /** An error cut the attempt short, maybe after one of the ends above: given back unless already ended. */
  abandon(): Awaitable<void>;
}

const NO_LOCKOUT: AttemptSlot = { fail: () => false, succeed: () => {}, release: () => {}, abandon: () => {} };

/**
 * Takes a slot for one attempt of `username` from `where`; undefined when failures and attempts in
 * progress already reach the limit (the attempt is then refused without being checked).
 */
export function takeAttemptSlot(username: string, where: Where, now: number, deps: LockoutDeps): Awaitable<AttemptSlot | undefined> {
  const { max_failures, duration } = deps.settings.lockout;
  if (max_failures === 0) return NO_LOCKOUT;
  const key = failureKey(username, where);
  return then(deps.state.increment(key, duration), (taken) => {
    // Over the limit: the count just taken is given back.
    if (taken > max_failures) return then(deps.state.decrement(key), () => undefined);
    return new Slot(username, where, now, key, taken, deps.settings.lockout, deps);
  });
}

/** A class, not an object of four closures: one is taken for every request that is checked. */
class Slot implements AttemptSlot {
  private used = false;

  constructor(
    private readonly username: string,
    private readonly where: Where,
    private readonly now: number,
    private readonly key: string,
    private readonly taken: number,
    /** As they were when the slot was taken: a reload does not change an attempt under way. */
    private readonly settings: LockoutDeps['settings']['lockout'],
    private readonly deps: LockoutDeps,
  ) {}

  async fail(reason: FailureReason, how: { wrongPassword?: string; afterRightPassword?: boolean } = {}): Promise<boolean> {
    this.end();
    const { username, where, key, deps } = this;
    const { max_failures, duration } = this.settings;
    if (how.wrongPassword !== undefined) await deps.state.mark(wrongPasswordKey(username, how.wrongPassword), duration);
    const count = how.afterRightPassword && !where.familiar ? await deps.state.increment(key, duration) : this.taken;
    if (count < max_failures) return false;
    await lock({ username, where, count, reason }, this.now, deps);
    return true;
  }

  succeed(): Awaitable<void> {
    this.end();
    return this.deps.state.reset(this.key);
  }

  release(): Awaitable<void> {
    this.end();
    return this.deps.state.decrement(this.key);
  }

  abandon(): Awaitable<void> {
    if (!this.used) return this.release();
  }

  private end(): void {
    if (this.used) throw new Error('bug: an attempt slot was ended twice');
    this.used = true;
  }
}

/** Counts one failure outside any slot (a wrong number, a wrong PIN on the phone); true when it locked the user. */
export async function recordFailure(username: string, where: Where, reason: FailureReason, now: number, deps: LockoutDeps): Promise<boolean> {
  const { max_failures, duration } = deps.settings.lockout;
  if (max_failures === 0) return false;
  const count = await deps.state.increment(failureKey(username, where), duration);
  if (count < max_failures) return false;
  await lock({ username, where, count, reason }, now, deps);
  return true;
}

/**
 * A full sign-in: the source's failures are forgotten, and it is familiar for `familiar_for`. The
 * strangers' count is forgotten only by a sign-in from a stranger's place (the one that counted it):
 * the real user signing in at their usual place gives a sprayer elsewhere no fresh tries.
 */
export function signedIn(username: string, where: Where, deps: LockoutDeps): Awaitable<void> {
  const { max_failures, familiar_for } = deps.settings.lockout;
  if (max_failures === 0) return;
  // On every accept: independent writes, one wait (a round trip each would add up with Redis).
  const writes: Awaitable<unknown>[] = [deps.state.reset(familiarFailureKey(username, where.source)), deps.state.mark(familiarKey(username, where.source), familiar_for)];
  if (!where.familiar) writes.push(deps.state.reset(strangersKey(username)));
  return allDone(writes);
}

export interface LockoutView {
  /** source null: the count toward the lock from unfamiliar sources. */
  failures: { source: string | null; count: number; until: number }[];
  familiar: { source: string; until: number }[];
}

/** What `user show` lists: the counts and the familiar sources of a user, live in this server. */
export async function lockoutView(username: string, deps: Pick<LockoutDeps, 'state'>): Promise<LockoutView> {
  const prefix = userPrefix(username);
  const view: LockoutView = { failures: [], familiar: [] };
  for (const e of await deps.state.entries(prefix)) {
    const kind = e.key.slice(prefix.length);
    if (kind === 'fail') view.failures.push({ source: null, count: e.n, until: e.expires });
    else if (kind.startsWith('fail\0')) view.failures.push({ source: kind.slice(5), count: e.n, until: e.expires });
    else if (kind.startsWith('seen\0')) view.familiar.push({ source: kind.slice(5), until: e.expires });
  }
  return view;
}

/** `user unlock`: the counts and remembered wrong passwords go (the familiar sources stay: they are the user's). */
export async function forgetFailures(username: string, deps: Pick<LockoutDeps, 'state'>): Promise<void> {
  const prefix = userPrefix(username);
  for (const e of await deps.state.entries(prefix)) if (!e.key.startsWith(`${prefix}seen\0`)) await deps.state.reset(e.key);
}

async function lock({ username, where, count, reason }: { username: string; where: Where; count: number; reason: FailureReason }, now: number, deps: LockoutDeps): Promise<void> {
  await deps.state.reset(failureKey(username, where));
  // At a familiar source, reaching the limit costs the source its place; the lock then holds there too.
  if (where.familiar) await deps.state.reset(familiarKey(username, where.source));
  const what = Number.isFinite(count) ? `${count} failed attempts` : 'failed attempts (the failure table is full)';
  const scope: LockScope = 'unfamiliar';
  const until = now + deps.settings.lockout.duration;
  await deps.store.lockUser(username, until, `${what} from ${where.source} (last: ${reason})`, scope);
  deps.onLock?.({ username, source: where.source, kind: where.familiar ? 'familiar_source' : 'unfamiliar', reason, until });
}
