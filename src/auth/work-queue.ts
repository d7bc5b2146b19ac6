// A bounded, deadline-aware queue for expensive checks (a password hash, an LDAP bind, an upstream
// round trip). A spray must not starve real users: work that could not finish before the NAS gives up
// is not started; a queue full of strangers gives way to a user at a source they signed in from before;
// and one username is checked once at a time, so one user's guesses cannot fill every slot.

/** familiar: the user has signed in from this source before (see flow/lockout.ts); other: anyone else. */
export type Lane = 'familiar' | 'other';

export const SHED = Symbol('shed');

export interface WorkQueueOptions {
  /** Checks running at once. */
  concurrency: number;
  /** Checks waiting; past it the newest stranger is shed. */
  maxQueued: number;
  now: () => number;
}

interface Job {
  key: string;
  deadline: number;
  lane: Lane;
  enqueuedAt: number;
  start: () => void;
  shed: () => void;
}

export interface WorkQueueStats {
  running: number;
  queued: number;
  /** Jobs refused: queue full, or their deadline could no longer be met. */
  shed: number;
  /** Sum and count of queue waits (ms), for the mean. */
  waitedMs: number;
  started: number;
}

export class WorkQueue {
  private readonly lanes: Record<Lane, Job[]> = { familiar: [], other: [] };
  private readonly busyKeys = new Set<string>();
  private running = 0;
  /** Mean run time, to tell whether a job can still finish by its deadline. */
  private meanRunMs = 0;
  readonly stats: WorkQueueStats = { running: 0, queued: 0, shed: 0, waitedMs: 0, started: 0 };

  constructor(private readonly options: WorkQueueOptions) {}

  /**
   * Runs `job` when a slot is free, no other job with the same `key` runs, and it can still end by
   * `deadline` (epoch ms); SHED otherwise. A familiar job goes before every stranger.
   */
  run<T>(key: string, deadline: number, lane: Lane, job: () => Promise<T>): Promise<T | typeof SHED> {
    return new Promise((resolve, reject) => {
      const entry: Job = {
        key,
        deadline,
        lane,
        enqueuedAt: this.options.now(),
        start: () => {
          const began = this.options.now();
          job().then(
            (value) => this.done(entry, began, () => resolve(value)),
            (err: unknown) => this.done(entry, began, () => reject(err)),
          );
        },
        shed: () => {
          this.stats.shed++;
          resolve(SHED);
        },
      };
      if (this.queued >= this.options.maxQueued && !this.makeRoomFor(entry)) return entry.shed();
      this.lanes[lane].push(entry);
      this.pump();
    });
  }

  get queued(): number {
    return this.lanes.familiar.length + this.lanes.other.length;
  }

  /** A full queue: a familiar job takes the place of the newest stranger; a stranger gets none. */
  private makeRoomFor(entry: Job): boolean {
    if (entry.lane !== 'familiar' || this.lanes.other.length === 0) return false;
    this.lanes.other.pop()!.shed();
    return true;
  }

  private pump(): void {
    while (this.running < this.options.concurrency) {
      const next = this.take();
      if (!next) break;
      this.running++;
      this.busyKeys.add(next.key);
      this.stats.started++;
      this.stats.waitedMs += this.options.now() - next.enqueuedAt;
      next.start();
    }
    this.stats.running = this.running;
    this.stats.queued = this.queued;
  }

  /** The first startable job, familiar lane first; jobs that can no longer meet their deadline are shed on the way. */
  private take(): Job | undefined {
    const now = this.options.now();
    for (const lane of ['familiar', 'other'] as const) {
      const jobs = this.lanes[lane];
      for (let i = 0; i < jobs.length; i++) {
        const job = jobs[i]!;
        if (job.deadline < now + this.meanRunMs) {
          jobs.splice(i--, 1);
          job.shed();
          continue;
        }
        if (this.busyKeys.has(job.key)) continue;
        jobs.splice(i, 1);
        return job;
      }
    }
    return undefined;
  }

  private done(entry: Job, began: number, settle: () => void): void {
    this.running--;
    this.busyKeys.delete(entry.key);
    // An exponential mean over the last ~20 runs: follows a slower backend within a second of load.
    this.meanRunMs += (this.options.now() - began - this.meanRunMs) / 20;
    settle();
    this.pump();
  }
}
