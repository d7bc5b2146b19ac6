/**
 * Latency histogram with fixed memory: 1 µs buckets up to 100 ms, 1 ms buckets up to 100 s.
 * Percentiles are exact to the bucket width; no per-sample allocation.
 */
const FINE_US = 100_000;
const COARSE_MS = 100_000;

export type LatencySummary = { count: number; meanMs: number; p50Ms: number; p90Ms: number; p99Ms: number; p999Ms: number; maxMs: number };

export class LatencyHistogram {
  private fine = new Uint32Array(FINE_US);
  private coarse = new Uint32Array(COARSE_MS);
  private n = 0;
  private sumMs = 0;
  private maxMs = 0;

  record(ms: number): void {
    const us = ms * 1000;
    if (us < FINE_US) this.fine[us < 0 ? 0 : us | 0]!++;
    else this.coarse[Math.min(COARSE_MS - 1, ms | 0)]!++;
    this.n++;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  reset(): void {
    this.fine.fill(0);
    this.coarse.fill(0);
    this.n = 0;
    this.sumMs = 0;
    this.maxMs = 0;
  }

  /** Value (ms, upper edge of its bucket) at quantile q in [0, 1]. */
  quantile(q: number): number {
    if (this.n === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < FINE_US; i++) {
      seen += this.fine[i]!;
      if (seen >= rank) return Math.min((i + 1) / 1000, this.maxMs);
    }
    for (let i = 0; i < COARSE_MS; i++) {
      seen += this.coarse[i]!;
      if (seen >= rank) return Math.min(i + 1, this.maxMs);
    }
    return this.maxMs;
  }

  summary(): LatencySummary {
    const r = (x: number) => Math.round(x * 1000) / 1000;
    return {
      count: this.n,
      meanMs: this.n ? r(this.sumMs / this.n) : NaN,
      p50Ms: r(this.quantile(0.5)),
      p90Ms: r(this.quantile(0.9)),
      p99Ms: r(this.quantile(0.99)),
      p999Ms: r(this.quantile(0.999)),
      maxMs: r(this.maxMs),
    };
  }
}
