// Prometheus metrics, read from counters the request path keeps anyway (counts.ts): scraping costs the path
// nothing. Loaded only when metrics.listen is set: prom-client is a measurable part of start-up.
import type { EngineMonitor } from '../health/engine-monitor.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import type { WorkQueueStats } from '../auth/work-queue.js';
import type { PendingPushes } from '../mfa/pending.js';
import type { RadiusServer } from '../radius/server.js';
import type { DecisionCounts, DeliveryCounts, LockoutCounts } from './counts.js';
import type { Health, HealthReport } from './health.js';
import { serveLockoutAdmin, type LockoutAdmin } from './lockout-admin.js';

export interface MetricSources {
  radius: RadiusServer;
  pending: PendingPushes;
  decisions: DecisionCounts;
  deliveries: DeliveryCounts;
  /** Shared engines (PostgreSQL, Redis) and whether they answer. */
  engines?: EngineMonitor;
  /** The queue in front of the first factor (absent for first_factor none), read at scrape time: it changes on reload. */
  firstFactorQueue?: () => WorkQueueStats | undefined;
  lockouts?: LockoutCounts;
}

function gauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** Counters whose value is copied from a source at scrape time (prom-client counters only go up, as these do). */
function mirrorCounter(registry: Registry, name: string, help: string, labelNames: string[], read: (c: Counter) => void): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      read(this);
    },
  });
}

export function buildRegistry(src: MetricSources): Registry {
  const registry = new Registry();
  const c = src.radius.counters;
  mirrorCounter(registry, 'radius_datagrams_received_total', 'UDP datagrams received on the RADIUS ports', [], (m) => m.inc(c.received));
  mirrorCounter(registry, 'radius_datagrams_dropped_total', 'Datagrams silently discarded, by reason', ['reason'], (m) => {
    for (const [reason, n] of src.radius.drops) m.inc({ reason }, n);
  });
  mirrorCounter(registry, 'radius_retransmissions_total', 'Retransmitted requests: dropped while in flight, or answered from the reply cache', ['kind'], (m) => {
    m.inc({ kind: 'in_flight' }, c.duplicates);
    m.inc({ kind: 'resent' }, c.resent);
  });
  const queue = () => src.firstFactorQueue?.();
  gauge(registry, 'radius_first_factor_queue_depth', 'Password checks waiting for a slot', () => queue()?.queued ?? 0);
  gauge(registry, 'radius_first_factor_running', 'Password checks running now', () => queue()?.running ?? 0);
  mirrorCounter(registry, 'radius_first_factor_checks_total', 'Password checks started', [], (m) => m.inc(queue()?.started ?? 0));
  mirrorCounter(registry, 'radius_first_factor_wait_seconds_total', 'Time password checks spent waiting for a slot (divide by checks_total for the mean)', [], (m) =>
    m.inc((queue()?.waitedMs ?? 0) / 1000),
  );
  mirrorCounter(registry, 'radius_first_factor_shed_total', 'Password checks not started: they could not finish before the NAS gives up, or the queue was full', [], (m) =>
    m.inc(queue()?.shed ?? 0),
  );
  mirrorCounter(registry, 'radius_lockouts_total', 'Users locked by failures, by kind: unfamiliar (from strangers) or familiar_source (a familiar source lost its place)', ['kind'], (m) => {
    for (const { labels, n } of src.lockouts?.entries() ?? []) m.inc(labels, n);
  });
  mirrorCounter(registry, 'radius_replies_total', 'Access replies sent (not counting re-sent cached replies)', [], (m) => m.inc(c.answered));
  mirrorCounter(registry, 'radius_errors_total', 'Requests that hit a bug and got no reply (see the error log)', [], (m) => m.inc(c.errors));
  mirrorCounter(registry, 'radius_decisions_total', 'Access decisions by client, method, result and reason', ['client', 'method', 'result', 'reason'], (m) => {
    for (const { labels, n } of src.decisions.entries()) m.inc(labels, n);
  });
  mirrorCounter(registry, 'radius_push_deliveries_total', 'Pushes handed to FCM or a Web Push service, by service and result (sent, stale_token, unavailable)', ['service', 'result'], (m) => {
    for (const { labels, n } of src.deliveries.entries()) m.inc(labels, n);
  });
  new Gauge({
    name: 'radius_pushes_pending',
    help: 'Push requests waiting for the phone (decided ones are not counted); with state redis, those this node sent or holds a request for',
    registers: [registry],
    collect() {
      this.set(src.pending.openCount);
    },
  });
  new Gauge({
    name: 'radius_reply_cache_entries',
    help: 'Requests in flight plus answered ones kept for retransmissions',
    registers: [registry],
    collect() {
      this.set(src.radius.pendingDuplicates);
    },
  });
  if (src.engines) {
    const engines = src.engines;
    new Gauge({
      name: 'radius_engine_up',
      help: 'Whether a shared engine answered its last call (1) or is down (0); requests needing it are rejected with store_unavailable / state_unavailable',
      labelNames: ['engine', 'kind'],
      registers: [registry],
      collect() {
        this.reset();
        for (const e of engines.statuses()) this.set({ engine: e.engine, kind: e.kind }, e.up ? 1 : 0);
      },
    });
  }
  return registry;
}

/** GET /metrics (and /healthz, /readyz when `health` is given) on its own port (keep it off the public API address). */
export async function listenMetrics(registry: Registry, host: string, port: number, health?: Health, lockouts?: LockoutAdmin): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (lockouts && serveLockoutAdmin(req, res, lockouts)) return;
    if (health && req.method === 'GET' && (req.url === '/healthz' || req.url === '/readyz')) {
      const json = (r: HealthReport) => res.writeHead(r.status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(r.body)}\n`);
      if (req.url === '/healthz') return json(health.live());
      health.ready().then(json, (err: Error) => json({ status: 503, body: { status: 'not_ready', error: err.message } }));
      return;
    }
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end(health ? 'see /metrics, /healthz, /readyz\n' : 'see /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
