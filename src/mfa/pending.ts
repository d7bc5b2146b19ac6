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
}

interface Entry {
  push: PendingPush;
  waiters: ((outcome: PushOutcome) => void)[];
  timer: NodeJS.Timeout;
  joinKey: string;
  /** performance.now() when decided: requests that arrived before belong to this attempt. */
  decidedArrival: number;
}

/** How long a decided push is kept for the request that comes back with its State. */
const KEEP_DECIDED_MS = 120_000;

export class PendingPushes {
  private readonly entries = new Map<string, Entry>();
  private readonly byAttempt = new Map<string, string>();
  /** Open pushes per user, so a device's poll does not scan every held request. */
  private readonly openByUser = new Map<string, Set<PendingPush>>();

  constructor(private readonly now: () => number) {}

  /** Retransmissions and re-sent requests of one attempt (same user, client and calling station) share one push. */
  static joinKey(username: string, clientName: string, callingStation: string | undefined): string {
    return `${username}\0${clientName}\0${callingStation ?? ''}`;
  }

  /**
   * The push of the attempt this request belongs to: the open one, or one decided after the request
   * arrived (its password check finished after the phone answered the copy that created the push).
   */
  findForAttempt(joinKey: string, arrival: number): PendingPush | undefined {
    const id = this.byAttempt.get(joinKey);
    const entry = id === undefined ? undefined : this.entries.get(id);
    if (!entry) return undefined;
    return !entry.push.outcome || entry.decidedArrival >= arrival ? entry.push : undefined;
  }

  create(init: PendingPushInit, timeoutMs: number): PendingPush {
    const createdAt = this.now();
    const push: PendingPush = { ...init, id: randomBytes(16).toString('base64url'), createdAt, expires: createdAt + timeoutMs, outcome: undefined };
    const joinKey = PendingPushes.joinKey(init.username, init.clientName, init.callingStation);
    const timer = setTimeout(() => this.decide(push.id, { kind: 'timeout' }), timeoutMs);
    this.entries.set(push.id, { push, waiters: [], timer, joinKey, decidedArrival: Infinity });
    this.byAttempt.set(joinKey, push.id);
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

  /** Forgets a decided push whose result was used, so it cannot be used twice. */
  consume(id: string): void {
    const entry = this.entries.get(id);
    if (!entry?.push.outcome) return;
    clearTimeout(entry.timer);
    this.forget(id);
  }

  private forget(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    if (this.byAttempt.get(entry.joinKey) === id) this.byAttempt.delete(entry.joinKey);
  }

  get size(): number {
    return this.entries.size;
  }

  close(): void {
    for (const { timer } of this.entries.values()) clearTimeout(timer);
    this.entries.clear();
    this.byAttempt.clear();
    this.openByUser.clear();
  }
}
