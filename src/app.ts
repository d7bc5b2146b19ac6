// Composition root: wires config, store, state and policy to the RADIUS server. Builds; never exits the process.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Server } from 'node:http';
import type { Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { crossFieldIssues } from './config/rules.js';
import { bindError, UserError } from './shared/errors.js';
import type { Config, FirstFactorConfig } from './config/schema.js';
import { canonicalUsername, usernameRules } from './flow/username.js';
import type { FirstFactor } from './auth/first-factor.js';
import { boundedFirstFactor, type BoundedFirstFactor } from './auth/bounded-first-factor.js';
import { forgetFailures, lockoutView, type LockoutDeps } from './flow/lockout.js';
import type { LockoutAdmin } from './metrics/lockout-admin.js';
import { RateLimiter } from './flow/rate-limit.js';
import { ldapFirstFactor } from './auth/ldap.js';
import { localFirstFactor } from './auth/local.js';
import { radiusUpstreamFirstFactor } from './auth/radius-upstream.js';
import { AccountingForwarder } from './radius/accounting-forwarder.js';
import { noFirstFactor } from './auth/none.js';
import type { AccessDeps } from './flow/access.js';
import { secondFactorSettings } from './flow/second-factor.js';
import { Policy } from './flow/policy.js';
import { buildClientTable, buildTlsClientTable, type ClientTable, type TlsClientTable } from './radius/clients.js';
import { RadiusServer, type AccountingRequest } from './radius/server.js';
import { accessHandler, accountingLine, statusAttributes } from './radius-adapter.js';
import { DecisionCounts, DeliveryCounts, LockoutCounts } from './metrics/counts.js';
import { Health } from './metrics/health.js';
import { backendChecks } from './health/backend-checks.js';
import { EngineMonitor, guardPushes, guardState, guardStore } from './health/engine-monitor.js';
import type { PendingPushes } from './mfa/pending.js';
import { reportingPushSender, routePushSender, type PushSender } from './mfa/push-sender.js';
import { createWebPushSender } from './mfa/web-push-sender.js';
import type { EphemeralState } from './state/state.js';
import type { Store } from './store/store.js';

export interface AppDeps {
  store: Store;
  state: EphemeralState;
  logger: Logger;
  now?: () => number;
  /** FCM delivery; undefined = devices with an FCM token poll the Mobile App API. */
  pushSender?: PushSender;
  /** Tests: the HTTPS agent Web Push goes through (one that trusts a local fake push service). */
  webPushAgent?: Agent;
  /** The config file, reported by /readyz. */
  configPath?: string;
}

interface Runtime {
  config: Config;
  clients: ClientTable;
  tlsClients: TlsClientTable;
  access: AccessDeps;
}

export interface BoundAddress {
  role: 'auth' | 'acct' | 'radsec' | 'http' | 'metrics';
  address: string;
  port: number;
}

export interface App {
  /** Binds RADIUS (and HTTP when configured); port 0 picks free ports, reported here. */
  start(): Promise<BoundAddress[]>;
  /** Swaps in a new (already validated) config; returns the changed settings that need a restart. */
  reload(config: Config): string[];
  close(): Promise<void>;
  readonly server: RadiusServer;
  readonly pending: PendingPushes;
}

/**
 * Checks at once per backend: a hash uses a core (and one libuv thread: cli.ts sizes the pool so that
 * other file work always finds a thread free); a bind or an upstream round trip mostly waits.
 */
const CHECKS_AT_ONCE = { local: availableParallelism(), ldap: 16, radius: 64 } as const;
/** Waiting checks past which strangers are shed (a familiar source still gets in): bounds memory under any flood. */
const MAX_WAITING_CHECKS = 1024;

function firstFactorFor(ff: FirstFactorConfig, store: Store, logger: Logger, now: () => number): FirstFactor {
  if (ff.type === 'none') return noFirstFactor;
  const inner = ff.type === 'local' ? localFirstFactor(ff.password_hash, store, logger) : ff.type === 'ldap' ? ldapFirstFactor(ff, logger) : radiusUpstreamFirstFactor(ff, logger);
  return boundedFirstFactor(inner, { concurrency: CHECKS_AT_ONCE[ff.type], maxQueued: MAX_WAITING_CHECKS, now, logger });
}

/** What outlives a reload: pushes, counts, rates. */
interface Kept {
  pending: PendingPushes;
  deliveries: DeliveryCounts;
  onLock: LockoutDeps['onLock'];
  rates: RateLimiter;
}

function buildRuntime(config: Config, deps: AppDeps, { pending, deliveries, onLock, rates }: Kept, now: () => number, previous?: Runtime): Runtime {
  // A client with `tls` is reached over RADIUS/TLS only: its address restricts the certificate, it opens no UDP door.
  const clients = buildClientTable(
    config.clients
      .filter((c) => !c.tls)
      .map((c) => ({
        addresses: c.address ?? [],
        client: { name: c.name, secret: Buffer.from(c.secret, 'utf8'), requireMessageAuthenticator: c.require_message_authenticator },
      })),
  );
  const tlsClients = buildTlsClientTable(
    config.clients.flatMap((c) =>
      c.tls ? [{ identity: c.tls, addresses: c.address, client: { name: c.name, secret: Buffer.from(c.secret, 'utf8'), requireMessageAuthenticator: false, tls: true } }] : [],
    ),
  );
  const sameFirstFactor = previous && JSON.stringify(previous.config.first_factor) === JSON.stringify(config.first_factor);
  const firstFactor = sameFirstFactor ? previous.access.firstFactor : firstFactorFor(config.first_factor, deps.store, deps.logger, now);
  const portalConfig = config.portal.first_factor;
  const samePortal = previous && JSON.stringify(previous.config.portal.first_factor) === JSON.stringify(portalConfig);
  const portalFirstFactor = !portalConfig ? firstFactor : samePortal ? previous.access.portalFirstFactor : firstFactorFor(portalConfig, deps.store, deps.logger, now);
  const usernames = usernameRules(config.usernames.realms);
  return {
    config,
    clients,
    tlsClients,
    access: {
      config,
      settings: secondFactorSettings(config),
      policy: new Policy(config, usernames),
      store: deps.store,
      state: deps.state,
      firstFactor,
      portalFirstFactor,
      usernames,
      pending,
      pushSender: pushSenderFor(config, deps, deliveries),
      onLock,
      rates,
      now,
    },
  };
}

/** FCM from deps, Web Push from the config (so a reload with new VAPID keys takes effect); undefined = all devices poll. */
function pushSenderFor(config: Config, deps: AppDeps, deliveries: DeliveryCounts): PushSender | undefined {
  const vapid = config.mobile_app.web_push;
  const webPush = vapid ? createWebPushSender(vapid, { agent: deps.webPushAgent }) : undefined;
  return webPush || deps.pushSender ? reportingPushSender(routePushSender({ fcm: deps.pushSender, webPush }), deps.logger, (service, result) => deliveries.add(service, result)) : undefined;
}

export function buildApp(config: Config, given: AppDeps): App {
  const now = given.now ?? Date.now;
  const log = given.logger;
  // Shared engines can go away while we run: every call to them is watched (engine-monitor.ts), and
  // an outage rejects the request that needed it (below) instead of leaving it without a reply.
  const engines = new EngineMonitor(log);
  const networkedStore = config.store.type === 'postgres';
  const networkedState = config.state.type === 'redis';
  if (networkedStore) engines.watch('store', config.store.type);
  if (networkedState) engines.watch('state', config.state.type);
  const deps: AppDeps = {
    ...given,
    store: networkedStore ? guardStore(given.store, engines) : given.store,
    state: networkedState ? guardState(given.state, engines) : given.state,
  };
  // Pushes live with the state: this process's memory, or Redis shared by every node (pub/sub for decisions).
  const pending = networkedState ? guardPushes(given.state.pushes(), engines) : given.state.pushes();
  const decisions = new DecisionCounts();
  const deliveries = new DeliveryCounts();
  const lockouts = new LockoutCounts();
  const onLock: LockoutDeps['onLock'] = (e) => {
    lockouts.add(e.kind);
    log.warn({ audit: true, event: 'user_locked', user: e.username, source: e.source, kind: e.kind, reason: e.reason, until: new Date(e.until).toISOString() }, 'user locked by failures (from unfamiliar sources)');
  };
  const kept: Kept = { pending, deliveries, onLock, rates: new RateLimiter(() => performance.now()) };
  let runtime = buildRuntime(config, deps, kept, now);

  const onAccess = accessHandler({ runtime: () => runtime, logger: log, decisions, now });

  const fwd = config.accounting.forward;
  const forwarder = fwd
    ? new AccountingForwarder({
        servers: fwd.servers.map((s) => ({ host: s.address.host, port: s.address.port, secret: Buffer.from(s.secret, 'utf8') })),
        timeoutMs: fwd.timeout,
        retries: fwd.retries,
        logger: log,
      })
    : undefined;
  const onAccounting = (request: AccountingRequest) => {
    forwarder?.forward(request.packet, request.q);
    accountingLine(log, request);
  };

  const server = new RadiusServer({
    auth: config.listen.auth ?? [],
    acct: config.listen.acct,
    radsec:
      config.listen.radsec && config.radsec
        ? {
            listen: config.listen.radsec,
            tls: { cert: readFileSync(config.radsec.cert), key: readFileSync(config.radsec.key), ca: readFileSync(config.radsec.ca) },
            clients: () => runtime.tlsClients,
            handshakeTimeoutMs: config.radsec.handshake_timeout,
            idleTimeoutMs: config.radsec.idle_timeout,
          }
        : undefined,
    clients: () => runtime.clients,
    dedupe: { windowMs: config.dedupe.window, maxEntries: config.dedupe.max_entries },
    onAccess,
    onAccounting,
    statusAttributes: statusAttributes(deps, config),
    logger: log,
    now,
  });

  for (const c of config.clients) {
    if (!c.require_message_authenticator) log.warn({ client: c.name }, 'client may send Access-Request without Message-Authenticator: exposed to BlastRADIUS (CVE-2024-3596)');
  }

  let http: FastifyInstance | undefined;
  const startHttp = async (): Promise<BoundAddress[]> => {
    const settings = config.http;
    if (!settings) return [];
    // The TLS rule (http.listen off loopback needs http.tls or http.insecure) is in config/rules.ts, checked by start().
    const https = settings.tls ? { cert: readTlsFile(settings.tls.cert, 'http.tls.cert'), key: readTlsFile(settings.tls.key, 'http.tls.key') } : undefined;
    // fastify and the API are loaded only when http is configured: they are half of the start-up time otherwise.
    const { buildHttp } = await import('./http/server.js');
    const started = await buildHttp({ config: () => runtime.config, store: deps.store, state: deps.state, pending, access: () => runtime.access, logger: log, now }, { https });
    http = started;
    await started.listen({ host: settings.listen.host, port: settings.listen.port }).catch((err: unknown) => {
      throw bindError(err, 'http.listen', settings.listen);
    });
    const a = started.server.address() as AddressInfo;
    return [{ role: 'http', address: a.address, port: a.port }];
  };

  let metrics: Server | undefined;
  let loadedAt = Date.now();
  const health = new Health({
    config: () => ({ path: deps.configPath ?? '(built in)', loadedAt }),
    pingStore: () => deps.store.ping?.(),
    pingState: deps.state.ping ? () => deps.state.ping?.() : undefined,
    kinds: { store: config.store.type, state: config.state.type },
    // The FCM token fetch goes to Google: check-config --connect does it, not every probe.
    backends: () => backendChecks(runtime.config, { fcm: false }),
  });
  const startMetrics = async (): Promise<BoundAddress[]> => {
    if (!config.metrics) return [];
    const listen = config.metrics.listen;
    const { buildRegistry, listenMetrics } = await import('./metrics/metrics.js');
    const registry = buildRegistry({ radius: server, pending, decisions, deliveries, engines, lockouts, firstFactorQueue: () => (runtime.access.firstFactor as Partial<BoundedFirstFactor>).queue?.stats });
    const admin: LockoutAdmin = {
      view: (username) => lockoutView(canonicalUsername(username, runtime.access.usernames) ?? username, runtime.access),
      forget: (username) => forgetFailures(canonicalUsername(username, runtime.access.usernames) ?? username, runtime.access),
    };
    const bound = await listenMetrics(registry, listen.host, listen.port, health, admin).catch((err: unknown) => {
      throw bindError(err, 'metrics.listen', listen);
    });
    metrics = bound.server;
    return [{ role: 'metrics', address: config.metrics.listen.host, port: bound.port }];
  };

  return {
    server,
    pending,
    async start() {
      const broken = crossFieldIssues(config)[0];
      if (broken) throw new UserError('CONFIG_RULE', `${broken.path.join('.')}: ${broken.message}`);
      // Subscribed to decisions before any request can be held (Redis); nothing to do for memory.
      await pending.start();
      const radius = await server.start().catch((err: unknown) => {
        throw radiusBindError(err, config);
      });
      return [...radius, ...(await startHttp()), ...(await startMetrics())];
    },
    reload(next) {
      const restart = (['listen', 'radsec', 'http', 'store', 'state', 'dedupe', 'metrics', 'accounting'] as const).filter((k) => JSON.stringify(next[k]) !== JSON.stringify(runtime.config[k]));
      const previous = runtime;
      runtime = buildRuntime(next, deps, kept, now, runtime);
      loadedAt = Date.now();
      // A replaced first factor (LDAP, upstream RADIUS) is closed once requests in flight are done with it.
      for (const which of ['firstFactor', 'portalFirstFactor'] as const) {
        const old = previous.access[which];
        if (old !== runtime.access[which] && old !== runtime.access.firstFactor && old.close) setTimeout(() => void old.close?.(), 120_000).unref();
      }
      log.level = next.log.level;
      return restart;
    },
    async close() {
      await server.close();
      await http?.close();
      await new Promise((resolve) => (metrics ? metrics.close(resolve) : resolve(undefined)));
      await pending.close();
      await runtime.access.firstFactor.close?.();
      if (runtime.access.portalFirstFactor !== runtime.access.firstFactor) await runtime.access.portalFirstFactor.close?.();
      await forwarder?.close();
    },
  };
}

/** The RADIUS address that failed to bind, by its config key (the socket error carries the address). */
function radiusBindError(err: unknown, config: Config): Error {
  const { address, port } = err as { address?: string; port?: number };
  const auth = (config.listen.auth ?? []).find((a) => a.port === port && (a.host === address || address === undefined));
  const acct = (config.listen.acct ?? []).find((a) => a.port === port && (a.host === address || address === undefined));
  const [key, at] = auth ? ['listen.auth', auth] : acct ? ['listen.acct', acct] : ['listen.auth', { host: address ?? '?', port: port ?? 0 }];
  return bindError(err, key, at);
}

function readTlsFile(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UserError('FILE_UNREADABLE', `${key} ${path}: ${(err as Error).message}`);
  }
}
