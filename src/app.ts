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
import { buildHttp } from './http/server.js';
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
import { decideAccess, type AccessAttempt, type AccessDeps, type Decision } from './flow/access.js';
import { secondFactorSettings } from './flow/second-factor.js';
import { MESSAGES, reject } from './flow/decision.js';
import { Policy } from './flow/policy.js';
import { RELAY_HINTS } from './flow/relay.js';
import { buildClientTable, buildTlsClientTable, type ClientTable, type TlsClientTable } from './radius/clients.js';
import { Attr, Code, encodeAttribute, encodeReplyMessage, findAttribute, type RadiusPacket } from './radius/packet.js';
import { RadiusServer, type AccessDrop, type AccessReply, type AccessRequest, type AccountingRequest } from './radius/server.js';
import { buildRegistry, DecisionCounts, DeliveryCounts, listenMetrics, LockoutCounts } from './metrics/metrics.js';
import { Health } from './metrics/health.js';
import { backendChecks } from './health/backend-checks.js';
import { EngineMonitor, EngineUnavailableError, enginesDownProbe, guardState, guardStore, type EnginePing } from './health/engine-monitor.js';
import { PendingPushes } from './mfa/pending.js';
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
 * log writes always find a thread free); a bind or an upstream round trip mostly waits.
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
  const pending = new PendingPushes(now);
  const decisions = new DecisionCounts();
  const deliveries = new DeliveryCounts();
  const lockouts = new LockoutCounts();
  const onLock: LockoutDeps['onLock'] = (e) => {
    lockouts.add(e.kind);
    log.warn({ audit: true, event: 'user_locked', user: e.username, source: e.source, kind: e.kind, reason: e.reason, until: new Date(e.until).toISOString() }, 'user locked by failures (from unfamiliar sources)');
  };
  const kept: Kept = { pending, deliveries, onLock, rates: new RateLimiter(() => performance.now()) };
  let runtime = buildRuntime(config, deps, kept, now);

  const onAccess = (request: AccessRequest): Promise<AccessReply | AccessDrop> => {
    const current = runtime;
    const p = request.packet;
    const src = request.source.address;
    const attempt: AccessAttempt = {
      q: request.q,
      clientName: request.client.name,
      username: request.userName,
      identity: undefined,
      password: request.password?.toString('utf8'),
      state: request.state,
      nasIp: ipv4(p),
      nasIdentifier: text(p, Attr.NasIdentifier),
      callingStation: text(p, Attr.CallingStationId),
      receivedAt: request.receivedAt,
      arrival: request.arrival,
      // Only what needs the packet keeps it: an upstream RADIUS first factor, or a request to relay.
      // Held longer, every PAP packet would outlive young-generation GCs and make them dearer.
      nas: request.password === undefined || current.config.first_factor.type === 'radius' ? request : undefined,
    };
    const conclude = (decision: Decision): AccessReply | AccessDrop => {
      // Shed under load: counted with the dropped datagrams, and the shedder logs when it starts and stops.
      if (decision.kind === 'drop') return { drop: decision.reason };
      audit(log, attempt, src, decision, now() - attempt.receivedAt);
      decisions.add(attempt.clientName, decision.method, decision.kind, decision.reason);
      const hint = RELAY_HINTS[decision.reason];
      if (hint) log.warn({ q: attempt.q, client: attempt.clientName, user: attempt.username, reason: decision.reason }, hint);
      return toReply(decision, current.config);
    };
    return decideAccess(attempt, current.access).catch(engineOutage).then((result) => {
      if (result.kind !== 'hold') return conclude(result);
      // Waiting for the phone keeps the attempt (for the audit line) but not the typed password or the packet.
      attempt.password = undefined;
      attempt.nas = undefined;
      return current.access.pending.wait(result.pushId).then((outcome) => conclude(result.settle(outcome)));
    });
  };

  /** A request that needed an engine that is down: its own reason, no reject delay (nothing was guessed). */
  const engineOutage = (err: unknown): Decision => {
    if (!(err instanceof EngineUnavailableError)) throw err;
    return reject(undefined, err.engine === 'state' ? 'state_unavailable' : 'store_unavailable', MESSAGES.engineUnavailable, false);
  };

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
    const p = request.packet;
    forwarder?.forward(p, request.q);
    log.info(
      {
        q: request.q,
        client: request.client.name,
        user: text(p, Attr.UserName),
        status: uint32(p, Attr.AcctStatusType),
        session: text(p, Attr.AcctSessionId),
        nas_id: text(p, Attr.NasIdentifier),
        nas_ip: ipv4(p),
      },
      'accounting',
    );
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
      pending.close();
      await runtime.access.firstFactor.close?.();
      if (runtime.access.portalFirstFactor !== runtime.access.firstFactor) await runtime.access.portalFirstFactor.close?.();
      await forwarder?.close();
    },
  };
}

/** A Status-Server probe waits at most this for the engines' answers (NAS probes time out after a few seconds). */
const STATUS_PING_CAP_MS = 1500;

/**
 * Status-Server still answers Access-Accept when a shared engine is down (RFC 5997 §3: the server is
 * alive), with a Reply-Message naming what is down, as `radclient ... status` and proxy logs show it.
 * Undefined when the node has no engine that can go away (SQLite and memory).
 */
function statusAttributes(deps: AppDeps, config: Config): (() => Promise<Buffer>) | undefined {
  const pings: EnginePing[] = [];
  const { store, state } = deps;
  if (config.store.type === 'postgres' && store.ping) pings.push({ engine: 'store', kind: config.store.type, ping: () => store.ping?.() });
  if (config.state.type === 'redis' && state.ping) pings.push({ engine: 'state', kind: config.state.type, ping: () => state.ping?.() });
  if (pings.length === 0) return undefined;
  const probe = enginesDownProbe(pings, STATUS_PING_CAP_MS);
  return async () => {
    const down = await probe();
    if (down.length === 0) return Buffer.alloc(0);
    const what = down.map((d) => `${d.kind} (${d.engine}) unavailable`).join(', ');
    const reasons = down.map((d) => `${d.engine}_unavailable`).join(', ');
    return encodeReplyMessage(`degraded: ${what}; sign-ins that need it are rejected (${reasons})`);
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

function toReply(decision: Exclude<Decision, { kind: 'drop' }>, config: Config): AccessReply {
  switch (decision.kind) {
    case 'accept':
      return { code: Code.AccessAccept, attributes: decision.reply };
    case 'reject': {
      // RFC 5080 §2.6 / FreeRADIUS reject_delay: slows guessing without holding anything else up.
      const message = encodeReplyMessage(decision.message);
      return { code: Code.AccessReject, attributes: decision.reply ? Buffer.concat([decision.reply, message]) : message, delayMs: decision.delay ? config.mfa.reject_delay : 0 };
    }
    case 'challenge':
      // A relayed upstream round carries its own EAP-Message, State and Reply-Message.
      if (decision.reply) return { code: Code.AccessChallenge, attributes: decision.reply };
      return { code: Code.AccessChallenge, attributes: Buffer.concat([encodeReplyMessage(decision.message), encodeAttribute(Attr.State, decision.state)]) };
  }
}

function text(packet: RadiusPacket, type: number): string | undefined {
  return findAttribute(packet, type)?.toString('utf8');
}

function uint32(packet: RadiusPacket, type: number): number | undefined {
  const v = findAttribute(packet, type);
  return v?.length === 4 ? v.readUInt32BE(0) : undefined;
}

function ipv4(packet: RadiusPacket): string | undefined {
  const v = findAttribute(packet, Attr.NasIpAddress);
  return v?.length === 4 ? `${v[0]}.${v[1]}.${v[2]}.${v[3]}` : undefined;
}

/** One line per decision; never the password, the code or the State. */
function audit(log: Logger, attempt: AccessAttempt, src: string, decision: Decision, ms: number): void {
  const failSafe = decision.reason === 'failmode_safe';
  // A wrong code only ever follows a right password (appended, or at the challenge): someone may hold it.
  const stolenPassword = decision.reason === 'bad_code';
  // Runs for every request: with info off (benchmarks, quiet sites) build no record at all.
  if (!failSafe && !stolenPassword && !log.isLevelEnabled('info')) return;
  const record = {
    audit: true,
    q: attempt.q,
    user: attempt.identity ?? attempt.username,
    // The name as typed, when it differs from who it is (ALICE, CORP\alice, an alias).
    login: attempt.identity !== undefined && attempt.identity !== attempt.username ? attempt.username : undefined,
    client: attempt.clientName,
    src,
    nas_id: attempt.nasIdentifier,
    nas_ip: attempt.nasIp,
    calling_station: attempt.callingStation,
    method: decision.method,
    result: decision.kind,
    reason: decision.reason,
    ms,
  };
  if (failSafe) log.error(record, 'decision');
  else if (stolenPassword) log.warn({ ...record, alert: 'possible_stolen_password' }, 'decision');
  else log.info(record, 'decision');
}
