// Request rates per client (NAS) and per source (Calling-Station-Id), checked before any other work.
// Kept in this process, synchronously: a limit per node, with no round trip to shared state on the
// request path. Fixed windows in a bounded LRU: a flood of rotating sources forgets old ones, never grows.
import { LRUCache } from 'lru-cache';
import { lazy } from '../shared/lazy.js';

const MAX_KEYS = 100_000;

export class RateLimiter {
  private readonly windows = lazy(() => new LRUCache<string, { start: number; n: number }>({ max: MAX_KEYS }));

  /** `now`: a monotonic clock (performance.now): rates are about real time, whatever clock decisions use. */
  constructor(private readonly now: () => number) {}

  /** Counts one event for `key`; true while the count in the current window of `windowMs` is at most `max`. */
  allow(key: string, max: number, windowMs: number): boolean {
    const now = this.now();
    const w = this.windows().get(key);
    if (!w || now - w.start >= windowMs) {
      this.windows().set(key, { start: now, n: 1 });
      return max >= 1;
    }
    return ++w.n <= max;
  }

  /** Whether the next event for `key` would be refused, without counting it. */
  wouldRefuse(key: string, max: number, windowMs: number): boolean {
    const w = this.windows().get(key);
    return w !== undefined && this.now() - w.start < windowMs && w.n >= max;
  }
}
