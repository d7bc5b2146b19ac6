// Latency histograms on node's own HDR histogram (perf_hooks) in ns: 3 significant digits, no per-sample
// allocation, ~25 ns a record (20 ns more than a hand-written bucket array: 0.2 % of a core at 100k/s).
import { createHistogram } from 'node:perf_hooks';

export type LatencySummary = ReturnType<LatencyHistogram['summary']>;

export class LatencyHistogram {
  private readonly h = createHistogram();

  record(ms: number): void {
    this.h.record(Math.max(1, Math.round(ms * 1e6)));
  }

  reset(): void {
    this.h.reset();
  }

  summary() {
    const n = this.h.count;
    const ms = (ns: number) => (n ? Math.round(ns / 1000) / 1000 : NaN); // to the µs
    const p = (q: number) => ms(this.h.percentile(q));
    return { count: n, meanMs: ms(this.h.mean), p50Ms: p(50), p90Ms: p(90), p99Ms: p(99), p999Ms: p(99.9), maxMs: n ? ms(this.h.max) : 0 };
  }
}
