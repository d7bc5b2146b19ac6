// /healthz and /readyz for load balancers and orchestrators, served beside /metrics.
// healthz: the process answers HTTP (liveness: restart it when this fails).
// readyz: config loaded, store answers, backends reachable (readiness: send it no traffic when this fails).
import type { BackendCheck, CheckOutcome } from '../health/backend-checks.js';
import { runChecks } from '../health/backend-checks.js';

export interface ReadinessSources {
  /** The config file the running config came from, and when it was (re)loaded. */
  config: () => { path: string; loadedAt: number };
  /** A cheap query on the open store; throws (or rejects) when it cannot be read. */
  pingStore: () => void | Promise<void>;
  /** A sign of life from the shared state (Redis); absent for memory. */
  pingState?: () => void | Promise<void>;
  /** What the store and state are (postgres, redis, ...), for the report. */
  kinds?: { store: string; state: string };
  /** The backend checks of the running config (LDAP, upstream RADIUS, ...). */
  backends: () => readonly BackendCheck[];
  now?: () => number;
}

export interface HealthReport {
  status: number;
  body: Record<string, unknown>;
}

/** Backend probes are cached this long: a probe every second from each load balancer must not become LDAP load. */
const BACKEND_CACHE_MS = 10_000;

export class Health {
  private cached: { at: number; results: { name: string; outcome: CheckOutcome }[] } | undefined;
  private running: Promise<{ name: string; outcome: CheckOutcome }[]> | undefined;
  private readonly startedAt: number;

  constructor(private readonly sources: ReadinessSources) {
    this.startedAt = this.now();
  }

  live(): HealthReport {
    return { status: 200, body: { status: 'ok', uptime_s: Math.round((this.now() - this.startedAt) / 1000) } };
  }

  async ready(): Promise<HealthReport> {
    const checks: Record<string, unknown> = {};
    let ready = true;
    const cfg = this.sources.config();
    checks.config = { ok: true, path: cfg.path, loaded_at: new Date(cfg.loadedAt).toISOString() };
    try {
      await this.sources.pingStore();
      checks.store = { ok: true, type: this.sources.kinds?.store };
    } catch (err) {
      ready = false;
      checks.store = { ok: false, type: this.sources.kinds?.store, error: (err as Error).message };
    }
    if (this.sources.pingState) {
      try {
        await this.sources.pingState();
        checks.state = { ok: true, type: this.sources.kinds?.state };
      } catch (err) {
        ready = false;
        checks.state = { ok: false, type: this.sources.kinds?.state, error: (err as Error).message };
      }
    }
    for (const { name, outcome } of await this.backendResults()) {
      checks[name] = outcome.ok ? { ok: true, detail: outcome.detail } : { ok: false, error: outcome.cause, fix: outcome.fix };
      ready &&= outcome.ok;
    }
    return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not_ready', checks } };
  }

  private backendResults(): Promise<{ name: string; outcome: CheckOutcome }[]> {
    const now = this.now();
    if (this.cached && now - this.cached.at < BACKEND_CACHE_MS) return Promise.resolve(this.cached.results);
    // Concurrent probes share one run.
    this.running ??= runChecks(this.sources.backends())
      .then((r) => r.map(({ check, outcome }) => ({ name: check.name, outcome })))
      .then((results) => {
        this.cached = { at: this.now(), results };
        return results;
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private now(): number {
    return (this.sources.now ?? Date.now)();
  }
}
