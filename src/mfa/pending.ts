// Push requests waiting for the phone. One entry per authentication attempt; the held Access-Requests
// (and their retransmissions) wait on it. In memory: one node. Several nodes need a shared store.
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

export interface PendingPush extends PendingPushInit {
  readonly id: string;
  readonly createdAt: number;
  readonly expires: number;
  outcome: PushOutcome | undefined;
  /**
   * The one outstanding challenge State (hex) of a number-matching push: every request of the attempt
   * gets this one, so at most one answer (one guess at the number) can be waiting at a time.
   */
  challengeState?: string;
}

interface Entry {
  push: PendingPush;
  waiters: ((outcome: PushOutcome) => void)[];
  timer: NodeJS.Timeout;
  joinKey: string | undefined;
  /** performance.now() when decided: requests that arrived before belong to this attempt. */
  decidedArrival: number;
  /** The outcome was taken for evaluation (see claim): nobody else may evaluate it. */
  claimed: boolean;
}

/** How long a decided push is kept for the request that comes back with its State. */
const KEEP_DECIDED_MS = 120_000;

export class PendingPushes {
  private readonly entries = new Map<string, Entry>();
  private readonly byAttempt = new Map<string, string>();
  /** Open pushes per user, so a device's poll does not scan every held request. */
  private readonly openByUser = new Map<string, Set<PendingPush>>();

  constructor(private readonly now: () => number) {}

  /**
   * Re-sent requests of one attempt (same user, client and calling station) share one push. Without a
   * Calling-Station-Id two logins of one user through one NAS look alike: they are not joined (exact
   * retransmissions are still answered once, by the RADIUS duplicate cache).
   */
  static joinKey(username: string, clientName: string, callingStation: string | undefined): string | undefined {
    return callingStation ? `${username}\0${clientName}\0${callingStation}` : undefined;
  }

  /**
   * The push of the attempt this request belongs to: the open one, or one decided after the request
   * arrived (its password check finished after the phone answered the copy that created the push).
   */
  findForAttempt(joinKey: string | undefined, arrival: number): PendingPush | undefined {
    if (joinKey === undefined) return undefined;
    const id = this.byAttempt.get(joinKey);
    const entry = id === undefined ? undefined : this.entries.get(id);
    if (!entry) return undefined;
    return !entry.push.outcome || entry.decidedArrival >= arrival ? entry.push : undefined;
  }

  create(init: PendingPushInit, timeoutMs: number): PendingPush {
    const createdAt = this.now();
    // Every field named, not `{ ...init }`: V8 (Node 20) gives almost every object built by a spread of a fresh
    // object a hidden class of its own, ~0.7 KiB more per held request (.micro measurement in docs/performance.md).
    const push: PendingPush = {
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
    const joinKey = PendingPushes.joinKey(init.username, init.clientName, init.callingStation);
    const timer = setTimeout(() => this.decide(push.id, { kind: 'timeout' }), timeoutMs);
    this.entries.set(push.id, { push, waiters: [], timer, joinKey, decidedArrival: Infinity, claimed: false });
    if (joinKey !== undefined) this.byAttempt.set(joinKey, push.id);
    let open = this.openByUser.get(push.username);
    if (!open) this.openByUser.set(push.username, (open = new Set()));
    open.add(push);
    return push;
  }

  get(id: string): PendingPush | undefined {
    return this.entries.get(id)?.push;
  }

  /** Undecided pushes for these users, oldest first (what a device lists). */
  openFor(username: string): PendingPush[] {
    return [...(this.openByUser.get(username) ?? [])];
  }

  /** Resolves with the outcome, or with undefined if it is still open after maxWaitMs. */
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
      entry.waiters.push(waiter);
      if (Number.isFinite(maxWaitMs)) {
        timer = setTimeout(() => {
          entry.waiters.splice(entry.waiters.indexOf(waiter), 1);
          resolve(undefined);
        }, Math.max(0, maxWaitMs));
      }
    });
  }

  /** Settles an open push once; false when it is unknown or already decided. */
  decide(id: string, outcome: PushOutcome): boolean {
    const entry = this.entries.get(id);
    if (!entry || entry.push.outcome) return false;
    entry.push.outcome = outcome;
    entry.decidedArrival = performance.now();
    const open = this.openByUser.get(entry.push.username)!;
    open.delete(entry.push);
    if (open.size === 0) this.openByUser.delete(entry.push.username);
    clearTimeout(entry.timer);
    for (const w of entry.waiters) w(outcome);
    entry.waiters.length = 0;
    entry.timer = setTimeout(() => this.forget(id), KEEP_DECIDED_MS);
    return true;
  }

  /**
   * Takes a decided push's outcome for evaluation, once: the first caller gets it and the push is
   * forgotten; every later caller (another waiter woken by the same approval) gets undefined. A check
   * of the typed number follows the claim with no await between, so only one answer is ever judged.
   */
  claim(id: string): PushOutcome | undefined {
    const entry = this.entries.get(id);
    if (!entry?.push.outcome || entry.claimed) return undefined;
    entry.claimed = true;
    clearTimeout(entry.timer);
    this.forget(id);
    return entry.push.outcome;
  }

  private forget(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    if (entry.joinKey !== undefined && this.byAttempt.get(entry.joinKey) === id) this.byAttempt.delete(entry.joinKey);
  }

  /** Pushes known: open ones and decided ones kept for the request that comes back with its State. */
  get size(): number {
    return this.entries.size;
  }

  /** Pushes still waiting for the phone. */
  get openCount(): number {
    let n = 0;
    for (const open of this.openByUser.values()) n += open.size;
    return n;
  }

  close(): void {
    for (const { timer } of this.entries.values()) clearTimeout(timer);
    this.entries.clear();
    this.byAttempt.clear();
    this.openByUser.clear();
  }
}
