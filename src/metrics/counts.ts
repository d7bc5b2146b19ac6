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

/**
 * Decisions by client, method, result and reason; filled by the audit step. Every request counts one:
 * found through a tree of Maps by the label values themselves (strings of the config and the code, whose
 * hashes V8 keeps), so no key string is built, and no object made unless the combination is new.
 */
export class DecisionCounts {
  private readonly tree = new Map<string, Map<string | undefined, Map<string, Map<string, { labels: Record<string, string>; n: number }>>>>();

  add(client: string, method: string | undefined, result: string, reason: string): void {
    const byMethod = this.tree.get(client) ?? setNew(this.tree, client);
    const byResult = byMethod.get(method) ?? setNew(byMethod, method);
    const byReason = byResult.get(result) ?? setNew(byResult, result);
    const hit = byReason.get(reason);
    if (hit) hit.n++;
    else byReason.set(reason, { labels: { client, method: method ?? 'none_chosen', result, reason }, n: 1 });
  }

  *entries(): Iterable<{ labels: Record<string, string>; n: number }> {
    for (const byMethod of this.tree.values()) for (const byResult of byMethod.values()) for (const byReason of byResult.values()) yield* byReason.values();
  }
}

function setNew<K, V>(map: Map<K, Map<unknown, V>>, key: K): Map<unknown, V> {
  const made = new Map<unknown, V>();
  map.set(key, made);
  return made;
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
