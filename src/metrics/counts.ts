// Counts the request path keeps by label values, read by the Prometheus metrics (metrics.ts) at scrape time.

/** Counts by label values, kept where the events happen and read at scrape time. */
class LabelledCounts {
  private readonly counts = new Map<string, { labels: Record<string, string>; n: number }>();

  /** Counts one for `key` (the label values joined); false when the key is new: then call insert(). */
  protected increment(key: string): boolean {
    const hit = this.counts.get(key);
    if (hit) hit.n++;
    return hit !== undefined;
  }

  protected insert(key: string, labels: Record<string, string>): void {
    this.counts.set(key, { labels, n: 1 });
  }

  entries(): Iterable<{ labels: Record<string, string>; n: number }> {
    return this.counts.values();
  }
}

/** Decisions by client, method, result and reason; filled by the audit step (every request: no object unless new). */
export class DecisionCounts extends LabelledCounts {
  add(client: string, method: string | undefined, result: string, reason: string): void {
    const key = `${client}\0${method}\0${result}\0${reason}`;
    if (!this.increment(key)) this.insert(key, { client, method: method ?? 'none_chosen', result, reason });
  }
}

/** Pushes handed to a push service, by service (fcm, web_push) and result (sent, stale_token, unavailable). */
export class DeliveryCounts extends LabelledCounts {
  add(service: string, result: string): void {
    const key = `${service}\0${result}`;
    if (!this.increment(key)) this.insert(key, { service, result });
  }
}

/** Locks set by the smart lockout, by kind (flow/lockout.ts). */
export class LockoutCounts extends LabelledCounts {
  add(kind: string): void {
    if (!this.increment(kind)) this.insert(kind, { kind });
  }
}
