// Request rates per client (NAS) and per source (Calling-Station-Id), checked before any other work.
// Kept in this process, synchronously: a limit per node, with no round trip to shared state on the
// request path. Fixed windows in a bounded LRU: a flood of rotating sources forgets old ones, never grows.
import { LRUCache } from 'lru-cache';
import { lazy } from '../shared/lazy.js';

const MAX_KEYS = 100_000;

/** What is counted: a client (NAS) by name, a source by Calling-Station-Id. Each kind has windows of its own. */
type RateKind = 'client' | 'source';

export class RateLimiter {
  // Per kind, so that a key is the name itself: no string made per request to look it up.
  private readonly windowsOf = { client: lazy(newWindows), source: lazy(newWindows) };

  /** `now`: a monotonic clock (performance.now): rates are about real time, whatever clock decisions use. */
  constructor(private readonly now: () => number) {}

  /** Counts one event for `key`; true while the count in the current window of `windowMs` is at most `max`. */
  allow(kind: RateKind, key: string, max: number, windowMs: number): boolean {
    const now = this.now();
    const windows = this.windowsOf[kind]();
    const w = windows.get(key);
    if (!w || now - w.start >= windowMs) {
      windows.set(key, { start: now, n: 1 });
      return max >= 1;
    }
    return ++w.n <= max;
  }

  /** Whether the next event for `key` would be refused, without counting it. */
  wouldRefuse(kind: RateKind, key: string, max: number, windowMs: number): boolean {
    const w = this.windowsOf[kind]().get(key);
    return w !== undefined && this.now() - w.start < windowMs && w.n >= max;
  }
}

function newWindows(): LRUCache<string, { start: number; n: number }> {
  return new LRUCache({ max: MAX_KEYS });
}
