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
  /** The NAS's port for the session (RFC 2865 §5.5), when it says: part of what makes an attempt. */
  nasPort?: number;
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

/**
 * Told what became of a push, once: `settled`, or `failed` when what the phone said cannot be known
 * (Redis went away). An object, not a promise: a held request is one of these (radius-adapter.ts), not a
 * promise, its reaction and two closures with their context. Neither method may throw.
 */
export interface PushWaiter {
  settled(outcome: PushOutcome | undefined): void;
  failed(err: unknown): void;
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
  /**
   * Tells `waiter` once what became of the push (undefined: unknown), with no limit but the push's own
   * timeout: a held request. At once when it is decided or unknown (memory: before this returns).
   */
  listen(id: string, waiter: PushWaiter): void;
  /** Resolves with the outcome, or with undefined if the push is unknown or still open after maxWaitMs (waitFor). */
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
 * Re-sent requests of one attempt (same user, client, calling station and NAS port) share one push,
 * on whichever node they arrive. Without a Calling-Station-Id two logins of one user through one NAS
 * look alike: they are not joined (exact retransmissions are still answered once, by the RADIUS
 * duplicate cache). The NAS port tells apart two sessions behind one NAT address: someone else there
 * with the user's password, signing in while the user's push is open, must not ride its approval.
 */
export function attemptKey(init: Pick<PendingPushInit, 'username' | 'clientName' | 'callingStation' | 'nasPort'>): string | undefined {
  // join, not a template: one flat string, not a chain of parts that hashing then copies flat as well.
  return init.callingStation ? [init.username, init.clientName, init.callingStation, init.nasPort ?? ''].join('\0') : undefined;
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
    nasPort: init.nasPort,
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
  /** The held requests: usually one, so an array made on the first (no Set per push). */
  waiters: PushWaiter[] | undefined;
  /** performance.now() when the push times out (open) or is forgotten (decided); see Deadlines. */
  due: number;
  joinKey: string | undefined;
  /** performance.now() when decided: requests that arrived before belong to this attempt. */
  decidedArrival: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** How long a decided push is kept for the request that comes back with its State. */
export const KEEP_DECIDED_MS = 120_000;
/** Deadlines left behind by decided and claimed pushes, beyond two per push kept, before they are dropped. */
const STALE_DEADLINES_ALLOWED = 1024;

/**
 * When each push is next due (times out, or is forgotten once decided), as a binary min-heap in two
 * parallel arrays under one timer: a Timeout object, its closure and its list links per held push
 * cost ~0.3 KiB of heap each. An entry whose push was decided, claimed or rescheduled meanwhile
 * stays until its time and is then passed over (its due no longer matches).
 */
class Deadlines {
  private readonly at: number[] = [];
  private readonly ids: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(private readonly fire: (id: string, at: number) => void) {}

  add(id: string, at: number): void {
    const { at: ats, ids } = this;
    let i = ats.length;
    ats.push(at);
    ids.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (ats[parent]! <= at) break;
      ats[i] = ats[parent]!;
      ids[i] = ids[parent]!;
      i = parent;
    }
    ats[i] = at;
    ids[i] = id;
    if (at < this.timerAt) this.arm(at);
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    this.at.length = 0;
    this.ids.length = 0;
  }

  get size(): number {
    return this.at.length;
  }

  /** Drops the deadlines `isCurrent` says are passed over anyway (pushes claimed, decided or gone). */
  compact(isCurrent: (id: string, at: number) => boolean): void {
    const { at: ats, ids } = this;
    let n = 0;
    for (let i = 0; i < ats.length; i++) {
      if (!isCurrent(ids[i]!, ats[i]!)) continue;
      ats[n] = ats[i]!;
      ids[n++] = ids[i]!;
    }
    ats.length = n;
    ids.length = n;
    for (let i = (n >> 1) - 1; i >= 0; i--) this.siftDown(i, ats[i]!, ids[i]!);
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.timerAt = at;
    // Timers run on the event loop's cached clock, which can lag performance.now(): run() re-arms if early.
    this.timer = setTimeout(() => this.run(), Math.max(0, Math.ceil(at - performance.now())));
  }

  private run(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    while (this.at.length > 0 && this.at[0]! <= now) {
      const at = this.at[0]!;
      const id = this.pop();
      this.fire(id, at);
    }
    // What fired may have added deadlines (and armed for them): the earliest left decides.
    if (this.at.length > 0 && this.at[0]! < this.timerAt) this.arm(this.at[0]!);
  }

  private pop(): string {
    const { at: ats, ids } = this;
    const top = ids[0]!;
    const lastAt = ats.pop()!;
    const lastId = ids.pop()!;
    if (ats.length > 0) this.siftDown(0, lastAt, lastId);
    return top;
  }

  /** Puts (at, id) at slot i or below it, where it keeps the heap order. */
  private siftDown(i: number, at: number, id: string): void {
    const { at: ats, ids } = this;
    const n = ats.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && ats[child + 1]! < ats[child]!) child++;
      if (ats[child]! >= at) break;
      ats[i] = ats[child]!;
      ids[i] = ids[child]!;
      i = child;
    }
    ats[i] = at;
    ids[i] = id;
  }
}

/** One node's pushes, in its memory. */
export class MemoryPendingPushes implements PendingPushes {
  private readonly entries = new Map<string, Entry>();
  private readonly byAttempt = new Map<string, string>();
  /** Open pushes per user, oldest first, so a device's poll does not scan every held request. */
  private readonly openByUser = new Map<string, Mutable<PendingPush>[]>();
  private readonly deadlines = new Deadlines((id, at) => this.due(id, at));

  constructor(private readonly now: () => number) {}

  async join(init: PendingPushInit, timeoutMs: number, arrival: number): Promise<{ push: PendingPush; created: boolean }> {
    const key = attemptKey(init);
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
    const joinKey = attemptKey(init);
    const due = performance.now() + timeoutMs;
    this.entries.set(push.id, { push, waiters: undefined, due, joinKey, decidedArrival: Infinity });
    this.deadlines.add(push.id, due);
    // Approved pushes leave their timeout's deadline behind (and claimed ones their keep-decided one):
    // under a steady flow of quick approvals, drop them once they outnumber the pushes kept.
    if (this.deadlines.size > 2 * this.entries.size + STALE_DEADLINES_ALLOWED) this.deadlines.compact((id, at) => this.entries.get(id)?.due === at);
    if (joinKey !== undefined) this.byAttempt.set(joinKey, push.id);
    const open = this.openByUser.get(push.username);
    if (open) open.push(push);
    else this.openByUser.set(push.username, [push]);
    return { ...push };
  }

  /** A deadline came: an open push times out, a decided one is forgotten (unless it was rescheduled or is gone). */
  private due(id: string, at: number): void {
    const entry = this.entries.get(id);
    if (!entry || entry.due !== at) return;
    if (entry.push.outcome) this.forget(id);
    else this.settle(id, { kind: 'timeout' });
  }

  async get(id: string): Promise<PendingPush | undefined> {
    const push = this.entries.get(id)?.push;
    return push && { ...push };
  }

  async openFor(username: string): Promise<PendingPush[]> {
    return (this.openByUser.get(username) ?? []).map((p) => ({ ...p }));
  }

  listen(id: string, waiter: PushWaiter): void {
    const entry = this.entries.get(id);
    if (!entry || entry.push.outcome) return waiter.settled(entry?.push.outcome);
    if (entry.waiters) entry.waiters.push(waiter);
    else entry.waiters = [waiter];
  }

  /** Stops telling `waiter` (a wait that gives up; waitFor): nothing when it was told already. */
  unlisten(id: string, waiter: PushWaiter): void {
    const waiters = this.entries.get(id)?.waiters;
    const at = waiters?.indexOf(waiter) ?? -1;
    if (at >= 0) waiters!.splice(at, 1);
  }

  wait(id: string, maxWaitMs?: number): Promise<PushOutcome | undefined> {
    return waitFor(this, id, maxWaitMs);
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
    if (open.length === 1) this.openByUser.delete(entry.push.username);
    else open.splice(open.indexOf(entry.push), 1);
    const waiters = entry.waiters;
    entry.waiters = undefined;
    entry.due = entry.decidedArrival + KEEP_DECIDED_MS;
    this.deadlines.add(id, entry.due);
    if (waiters) for (const w of waiters) w.settled(outcome);
    return true;
  }

  /** The outcome, to one caller only (a synchronous body): only one answer is ever judged (settlePush compares the number after). */
  async claim(id: string): Promise<PushOutcome | undefined> {
    const entry = this.entries.get(id);
    if (!entry?.push.outcome) return undefined;
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
    for (const open of this.openByUser.values()) n += open.length;
    return n;
  }

  async close(): Promise<void> {
    this.deadlines.clear();
    this.entries.clear();
    this.byAttempt.clear();
    this.openByUser.clear();
  }
}

/**
 * PendingPushes.wait on listen: the promise a caller that can wait only so long awaits. `unlisten` is the
 * implementation's own (not the interface's): a guard that wraps the waiter given to listen (health/) never sees it.
 */
export function waitFor(pushes: { listen(id: string, w: PushWaiter): void; unlisten(id: string, w: PushWaiter): void }, id: string, maxWaitMs = Infinity): Promise<PushOutcome | undefined> {
  return new Promise((resolve, reject) => {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const waiter: PushWaiter = {
      settled: (outcome) => {
        done = true;
        clearTimeout(timer);
        resolve(outcome);
      },
      failed: (err) => {
        done = true;
        clearTimeout(timer);
        reject(err);
      },
    };
    pushes.listen(id, waiter);
    if (done || !Number.isFinite(maxWaitMs)) return;
    timer = setTimeout(() => {
      pushes.unlisten(id, waiter);
      resolve(undefined);
    }, Math.max(0, maxWaitMs));
  });
}
