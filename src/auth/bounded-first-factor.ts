// A first factor behind a WorkQueue: bounded, deadline-aware, familiar sources first, one check per
// username at a time. Refusals that need no check (an unknown local user) wait as long as a real check
// takes, on a timer: timing tells nothing about which usernames exist, and a spray of unknown names
// costs no CPU.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { FirstFactor, FirstFactorResult } from './first-factor.js';
import { SHED, WorkQueue, type WorkQueueOptions } from './work-queue.js';

/** Recent check durations (queue wait included): what a refusal without a check waits, drawn at random. */
export class CheckTimes {
  private readonly samples: number[] = [];
  private next = 0;

  constructor(
    private readonly size = 256,
    private readonly random: () => number = Math.random,
  ) {}

  record(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.size;
  }

  /** A duration seen lately; 0 before any check was made. */
  sample(): number {
    if (this.samples.length === 0) return 0;
    return this.samples[Math.floor(this.random() * this.samples.length)]!;
  }
}

export interface BoundedOptions extends WorkQueueOptions {
  logger: Logger;
  /** Monotonic milliseconds, for durations (performance.now). */
  clock?: () => number;
  /** The timer a refusal without a check waits on (tests run it on virtual time). */
  sleep?: (ms: number) => Promise<unknown>;
  times?: CheckTimes;
  /** How long without shedding before "shedding stopped" is logged. */
  quietMs?: number;
}

export interface BoundedFirstFactor extends FirstFactor {
  readonly queue: WorkQueue;
}

export function boundedFirstFactor(inner: FirstFactor, options: BoundedOptions): BoundedFirstFactor {
  const queue = new WorkQueue(options);
  const clock = options.clock ?? (() => performance.now());
  const times = options.times ?? new CheckTimes();
  const wait = options.sleep ?? sleep;
  const shedding = shedLog(options.logger.child({ first_factor: inner.type }), options.quietMs ?? 10_000, clock);

  // A timer fires late by the event loop's lag: sleep that much less, so the total is what a check took.
  let lateMs = 0;
  const waitAsIfChecked = async () => {
    const target = times.sample();
    if (target <= 0) return;
    const planned = Math.max(0, target - lateMs);
    const began = clock();
    await wait(planned);
    lateMs += (clock() - began - planned - lateMs) / 16;
  };

  return {
    ...inner,
    queue,
    waitAsIfChecked,
    async check(username, password, user, context): Promise<FirstFactorResult> {
      const cheap = inner.cheapReject?.(user);
      if (cheap) {
        await waitAsIfChecked();
        return { kind: 'reject', reason: cheap };
      }
      const began = clock();
      const r = await queue.run(username, context?.deadline ?? Infinity, context?.lane ?? 'other', async () => inner.check(username, password, user, context));
      if (r === SHED) {
        shedding.shed(queue);
        return { kind: 'unavailable', reason: 'overloaded' };
      }
      times.record(clock() - began);
      return r;
    },
  };
}

/** One warn line when shedding starts, one when it has stopped for `quietMs`, with the count: not one per request. */
function shedLog(log: Logger, quietMs: number, clock: () => number) {
  let since: number | undefined;
  let count = 0;
  let timer: NodeJS.Timeout | undefined;
  let last = 0;
  const stop = () => {
    const idle = clock() - last;
    if (idle < quietMs) {
      timer = setTimeout(stop, quietMs - idle);
      timer.unref();
      return;
    }
    log.warn({ event: 'shedding_stopped', shed: count, ms: Math.round(last - since!) }, `overload over: ${count} password checks were shed`);
    since = undefined;
    timer = undefined;
  };
  return {
    shed(queue: WorkQueue) {
      last = clock();
      if (since === undefined) {
        since = last;
        count = 0;
        log.warn(
          { event: 'shedding_started', queued: queue.queued, running: queue.stats.running },
          'overloaded: password checks that could not finish before the NAS gives up are dropped (the NAS retries); see radius_first_factor_* metrics',
        );
        timer = setTimeout(stop, quietMs);
        timer.unref();
      }
      count++;
    },
  };
}
