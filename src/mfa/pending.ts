// Push requests waiting for the phone. One entry per authentication attempt; the held Access-Requests
// (and their retransmissions) wait on it. The interface is what every node sees the same way: in this
// process's memory (MemoryPendingPushes, one node) or in Redis (state/redis-pushes.ts, several nodes);
// test/state-contract.test.ts holds both to one contract.
import { randomBytes } from 'node:crypto';

export type PushAnswer = 'approve' | 'deny' | 'fraud';
/** locked: wrong PINs on the phone reached the lockout limit. */
export type PushOutcome = { kind: PushAnswer | 'locked'; deviceId: string } | { kind: 'timeout' };

export interface PendingPushInit {
  username: string;
  clientName: string;
  nasIp: string | undefined;
  nasIdentifier: string | undefined;
  callingStation: string | undefined;
  pinRequired: boolean;
  /** The number the phone shows when number matching applies. */
  number: string | undefined;
}

/** What a node reads of a push: a copy, never a live object (another node may decide it meanwhile). */
export interface PendingPush extends PendingPushInit {
  readonly id: string;
  readonly createdAt: number;
  readonly expires: number;
  readonly outcome: PushOutcome | undefined;
  /**
   * The one outstanding challenge State (hex) of a number-matching push: every request of the attempt
   * gets this one, so at most one answer (one guess at the number) can be waiting at a time.
   */
  readonly challengeState?: string;
}

export interface PendingPushes {
  /**
   * The push of this attempt (same user, client and Calling-Station-Id): the open one, or one decided
   * after `arrival` (performance.now() when the request came in: its password check finished after the
   * phone answered the copy that made the push); else a new one. Check and creation are one atomic step,
   * so requests of one attempt arriving at once, at one node or at several, make one push.
   */
  join(init: PendingPushInit, timeoutMs: number, arrival: number): Promise<{ push: PendingPush; created: boolean }>;
  /** A new push, joined by nothing (a portal sign-in). */
  create(init: PendingPushInit, timeoutMs: number): Promise<PendingPush>;
  get(id: string): Promise<PendingPush | undefined>;
  /** Undecided pushes of a user, oldest first (what a device lists). */
  openFor(username: string): Promise<PendingPush[]>;
  /** Resolves with the outcome, or with undefined if the push is unknown or still open after maxWaitMs. */
  wait(id: string, maxWaitMs?: number): Promise<PushOutcome | undefined>;
  /** Settles an open push once, on every node; false when it is unknown or already decided. */
  decide(id: string, outcome: PushOutcome): Promise<boolean>;
  /**
   * Takes a decided push's outcome for evaluation, once across every node: the first caller gets it and
   * the push is forgotten; every later caller (another waiter woken by the same approval) gets undefined.
   */
  claim(id: string): Promise<PushOutcome | undefined>;
  /**
   * Makes `state` the push's outstanding challenge State if the one standing is still `expected`
   * (undefined: none yet); returns the one that stands afterwards (undefined: the push is gone).
   */
  offerChallengeState(id: string, expected: string | undefined, state: string): Promise<string | undefined>;
  /** Ready to be told of decisions (Redis: subscribed); resolves at once for memory. */
  start(): Promise<void>;
  /** Pushes this node keeps: memory, every open or recently decided one; Redis, those it waits on or times out. */
  readonly size: number;
  /** Pushes still waiting for the phone that this node knows of (memory: all of them). */
  readonly openCount: number;
  close(): Promise<void>;
}

/**
 * Re-sent requests of one attempt (same user, client and calling station) share one push. Without a
 * Calling-Station-Id two logins of one user through one NAS look alike: they are not joined (exact
 * retransmissions are still answered once, by the RADIUS duplicate cache).
 */
export function attemptKey(username: string, clientName: string, callingStation: string | undefined): string | undefined {
  return callingStation ? `${username}\0${clientName}\0${callingStation}` : undefined;
}

/**
 * A new push record. Every field named, not `{ ...init }`: V8 (Node 20) gives almost every object built by
 * a spread of a fresh object a hidden class of its own, ~0.7 KiB more per held request (.micro measurement in
 * docs/performance.md).
 */
export function newPush(init: PendingPushInit, createdAt: number, timeoutMs: number): PendingPush {
  return {
    username: init.username,
    clientName: init.clientName,
    nasIp: init.nasIp,
    nasIdentifier: init.nasIdentifier,
    callingStation: init.callingStation,
    pinRequired: init.pinRequired,
    number: init.number,
    id: randomBytes(16).toString('base64url'),
    createdAt,
    expires: createdAt + timeoutMs,
    outcome: undefined,
  };
}

interface Entry {
  push: Mutable<PendingPush>;
  waiters: Set<(outcome: PushOutcome) => void>;
  timer: NodeJS.Timeout;
  joinKey: string | undefined;
  /** performance.now() when decided: requests that arrived before belong to this attempt. */
  decidedArrival: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** How long a decided push is kept for the request that comes back with its State. */
export const KEEP_DECIDED_MS = 120_000;

/** One node's pushes, in its memory. */
export class MemoryPendingPushes implements PendingPushes {
  private readonly entries = new Map<string, Entry>();
  private readonly byAttempt = new Map<string, string>();
  /** Open pushes per user, so a device's poll does not scan every held request. */
  private readonly openByUser = new Map<string, Set<Mutable<PendingPush>>>();

  constructor(private readonly now: () => number) {}

  async join(init: PendingPushInit, timeoutMs: number, arrival: number): Promise<{ push: PendingPush; created: boolean }> {
    const key = attemptKey(init.username, init.clientName, init.callingStation);
    const id = key === undefined ? undefined : this.byAttempt.get(key);
    const entry = id === undefined ? undefined : this.entries.get(id);
    if (entry && (!entry.push.outcome || entry.decidedArrival >= arrival)) return { push: { ...entry.push }, created: false };
    return { push: this.add(init, timeoutMs), created: true };
  }

  async create(init: PendingPushInit, timeoutMs: number): Promise<PendingPush> {
    return this.add(init, timeoutMs);
  }

  private add(init: PendingPushInit, timeoutMs: number): PendingPush {
    const push: Mutable<PendingPush> = newPush(init, this.now(), timeoutMs);
    const joinKey = attemptKey(init.username, init.clientName, init.callingStation);
    const timer = setTimeout(() => this.settle(push.id, { kind: 'timeout' }), timeoutMs);
    this.entries.set(push.id, { push, waiters: new Set(), timer, joinKey, decidedArrival: Infinity });
    if (joinKey !== undefined) this.byAttempt.set(joinKey, push.id);
    let open = this.openByUser.get(push.username);
    if (!open) this.openByUser.set(push.username, (open = new Set()));
    open.add(push);
    return { ...push };
  }

  async get(id: string): Promise<PendingPush | undefined> {
    const push = this.entries.get(id)?.push;
    return push && { ...push };
  }

  async openFor(username: string): Promise<PendingPush[]> {
    return [...(this.openByUser.get(username) ?? [])].map((p) => ({ ...p }));
  }

  wait(id: string, maxWaitMs = Infinity): Promise<PushOutcome | undefined> {
    const entry = this.entries.get(id);
    if (!entry) return Promise.resolve(undefined);
    if (entry.push.outcome) return Promise.resolve(entry.push.outcome);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter = (outcome: PushOutcome) => {
        if (timer) clearTimeout(timer);
        resolve(outcome);
      };
      entry.waiters.add(waiter);
      if (Number.isFinite(maxWaitMs)) {
        timer = setTimeout(() => {
          entry.waiters.delete(waiter);
          resolve(undefined);
        }, Math.max(0, maxWaitMs));
      }
    });
  }

  async decide(id: string, outcome: PushOutcome): Promise<boolean> {
    return this.settle(id, outcome);
  }

  private settle(id: string, outcome: PushOutcome): boolean {
    const entry = this.entries.get(id);
    if (!entry || entry.push.outcome) return false;
    entry.push.outcome = outcome;
    entry.decidedArrival = performance.now();
    const open = this.openByUser.get(entry.push.username)!;
    open.delete(entry.push);
    if (open.size === 0) this.openByUser.delete(entry.push.username);
    clearTimeout(entry.timer);
    for (const w of entry.waiters) w(outcome);
    entry.waiters.clear();
    entry.timer = setTimeout(() => this.forget(id), KEEP_DECIDED_MS);
    return true;
  }

  /** The outcome, to one caller only (a synchronous body): only one answer is ever judged (settlePush compares the number after). */
  async claim(id: string): Promise<PushOutcome | undefined> {
    const entry = this.entries.get(id);
    if (!entry?.push.outcome) return undefined;
    clearTimeout(entry.timer);
    this.forget(id);
    return entry.push.outcome;
  }

  async offerChallengeState(id: string, expected: string | undefined, state: string): Promise<string | undefined> {
    const push = this.entries.get(id)?.push;
    if (!push) return undefined;
    if (push.challengeState === expected) push.challengeState = state;
    return push.challengeState;
  }

  async start(): Promise<void> {}

  private forget(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    if (entry.joinKey !== undefined && this.byAttempt.get(entry.joinKey) === id) this.byAttempt.delete(entry.joinKey);
  }

  get size(): number {
    return this.entries.size;
  }

  get openCount(): number {
    let n = 0;
    for (const open of this.openByUser.values()) n += open.size;
    return n;
  }

  async close(): Promise<void> {
    for (const { timer } of this.entries.values()) clearTimeout(timer);
    this.entries.clear();
    this.byAttempt.clear();
    this.openByUser.clear();
  }
}
