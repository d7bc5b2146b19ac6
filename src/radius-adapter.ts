// Between the RADIUS server and the access flow: attributes in (the packet decoded into an AccessAttempt),
// the reply out (a Decision encoded as reply attributes), and the audit line for each decision.
// radius/ knows nothing of users and flow/ nothing of packets: this file is where the two meet.
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { decideAccess, type AccessAttempt, type AccessDeps, type Decision, type Hold } from './flow/access.js';
import { MESSAGES, reject } from './flow/decision.js';
import { RELAY_HINTS } from './flow/relay.js';
import { EngineUnavailableError, enginesDownProbe, type EnginePing } from './health/engine-monitor.js';
import { writeLine } from './log/logger.js';
import type { Awaitable } from './shared/awaitable.js';
import type { DecisionCounts } from './metrics/counts.js';
import type { PushOutcome, PushWaiter } from './mfa/pending.js';
import { Attr, Code, encodeAttribute, encodeReplyMessage, findAttribute, findText, type RadiusPacket } from './radius/packet.js';
import type { EphemeralState } from './state/state.js';
import type { Store } from './store/store.js';
import type { AccessDrop, AccessHandler, AccessReply, AccessRequest, AccessResponder, AccountingRequest } from './radius/server.js';

/** What deciding a request reads at the moment it arrives (a reload swaps it). */
export interface AccessRuntime {
  config: Config;
  access: AccessDeps;
}

export interface AccessHandlerDeps {
  runtime: () => AccessRuntime;
  logger: Logger;
  decisions: DecisionCounts;
  now: () => number;
}

/** The RADIUS server's onAccess: decode, decide (waiting for a phone if need be), audit, encode, answer. */
export function accessHandler(deps: AccessHandlerDeps): AccessHandler {
  return (request, respond) => {
    const current = deps.runtime();
    // Only what needs the packet keeps it: an upstream RADIUS first factor, or a request to relay.
    // Held longer, every PAP packet would outlive young-generation GCs and make them dearer.
    const attempt = attemptOf(request, request.password === undefined || current.config.first_factor.type === 'radius');
    const src = request.source.address;
    let decided: Awaitable<Decision | Hold>;
    try {
      decided = decideAccess(attempt, current.access);
    } catch (err) {
      return afterOutage(err, attempt, src, current, deps, respond);
    }
    // Decided at once (every step in memory): answered in this same turn, with no promise made.
    if (!(decided instanceof Promise)) return afterDecision(decided, attempt, src, current, deps, respond);
    decided.then(
      (result) => afterDecision(result, attempt, src, current, deps, respond),
      (err: unknown) => afterOutage(err, attempt, src, current, deps, respond),
    );
  };
}

/** A decision, or a hold until the phone answers. Nothing here may throw: a bug fails the request (respond.fail). */
function afterDecision(result: Decision | Hold, attempt: AccessAttempt, src: string, current: AccessRuntime, deps: AccessHandlerDeps, respond: AccessResponder): void {
  if (result.kind !== 'hold') return answer(result, attempt, src, current, deps, respond);
  // Waiting for the phone keeps the attempt (for the audit line) but not the typed password or the packet.
  attempt.password = undefined;
  attempt.nas = undefined;
  try {
    current.access.pending.listen(result.pushId, new HeldRequest(result, attempt, src, current, deps, respond));
  } catch (err) {
    respond.fail(err);
  }
}

/**
 * A request held for the phone, told by PendingPushes what the phone said: one object, not a promise with
 * its reaction and two closures over a scope (10,000 held keep 10,000 of these). Redis gone while it
 * waits: what the phone said cannot be known, so state_unavailable, never a guess.
 */
class HeldRequest implements PushWaiter {
  constructor(
    private readonly hold: Hold,
    private readonly attempt: AccessAttempt,
    private readonly src: string,
    private readonly current: AccessRuntime,
    private readonly deps: AccessHandlerDeps,
    private readonly respond: AccessResponder,
  ) {}

  settled(outcome: PushOutcome | undefined): void {
    let decision: Decision;
    try {
      decision = this.hold.settle(outcome);
    } catch (err) {
      return this.respond.fail(err);
    }
    answer(decision, this.attempt, this.src, this.current, this.deps, this.respond);
  }

  failed(err: unknown): void {
    afterOutage(err, this.attempt, this.src, this.current, this.deps, this.respond);
  }
}

/** A request that needed an engine that is down: its own reason, no reject delay (nothing was guessed). Any other error is a bug. */
function afterOutage(err: unknown, attempt: AccessAttempt, src: string, current: AccessRuntime, deps: AccessHandlerDeps, respond: AccessResponder): void {
  if (!(err instanceof EngineUnavailableError)) return respond.fail(err);
  const decision = reject(undefined, err.engine === 'state' ? 'state_unavailable' : 'store_unavailable', MESSAGES.engineUnavailable, false);
  answer(decision, attempt, src, current, deps, respond);
}

/** A decided request: audited, counted, encoded, answered. */
function answer(decision: Decision, attempt: AccessAttempt, src: string, current: AccessRuntime, deps: AccessHandlerDeps, respond: AccessResponder): void {
  let reply: AccessReply | AccessDrop;
  try {
    reply = conclude(decision, attempt, src, current, deps);
  } catch (err) {
    return respond.fail(err);
  }
  respond.reply(reply);
}

/** Audit line, count, reply attributes. */
function conclude(decision: Decision, attempt: AccessAttempt, src: string, current: AccessRuntime, { logger: log, decisions, now }: AccessHandlerDeps): AccessReply | AccessDrop {
  // Shed under load: counted with the dropped datagrams, and the shedder logs when it starts and stops.
  if (decision.kind === 'drop') return { drop: decision.reason };
  auditLine(log, attempt, src, decision, now() - attempt.receivedAt);
  decisions.add(attempt.clientName, decision.method, decision.kind, decision.reason);
  const hint = RELAY_HINTS.get(decision.reason);
  if (hint) log.warn({ q: attempt.q, client: attempt.clientName, user: attempt.username, reason: decision.reason }, hint);
  return toReply(decision, current.config.mfa.reject_delay);
}

/** The RADIUS server's onAccounting: one line per Accounting-Request (forwarding is the caller's). */
export function accountingLine(log: Logger, request: AccountingRequest): void {
  const p = request.packet;
  log.info(
    {
      q: request.q,
      client: request.client.name,
      user: findText(p, Attr.UserName),
      status: uint32(p, Attr.AcctStatusType),
      session: findText(p, Attr.AcctSessionId),
      nas_id: findText(p, Attr.NasIdentifier),
      nas_ip: ipv4(p),
    },
    'accounting',
  );
}

/** Attributes in: what the flow needs of an Access-Request. `keepNas`: the packet itself goes along. */
function attemptOf(request: AccessRequest, keepNas: boolean): AccessAttempt {
  const p = request.packet;
  return {
    q: request.q,
    clientName: request.client.name,
    username: request.userName,
    identity: undefined,
    // Set once the user is known (UserAttempt); here from the start, so that setting them adds no property store.
    where: undefined,
    user: undefined,
    method: undefined,
    password: request.password?.toString('utf8'),
    state: request.state,
    nasIp: ipv4(p),
    nasIdentifier: findText(p, Attr.NasIdentifier),
    callingStation: findText(p, Attr.CallingStationId),
    nasPort: uint32(p, Attr.NasPort),
    receivedAt: request.receivedAt,
    arrival: request.arrival,
    nas: keepNas ? request : undefined,
  };
}

/** The reply out: code and attributes (Message-Authenticator and Proxy-State are the server's). */
function toReply(decision: Exclude<Decision, { kind: 'drop' }>, rejectDelayMs: number): AccessReply {
  switch (decision.kind) {
    case 'accept':
      return { code: Code.AccessAccept, attributes: decision.reply };
    case 'reject': {
      // RFC 5080 §2.6 / FreeRADIUS reject_delay: slows guessing without holding anything else up.
      const message = replyMessage(decision.message);
      return { code: Code.AccessReject, attributes: decision.reply ? Buffer.concat([decision.reply, message]) : message, delayMs: decision.delay ? rejectDelayMs : 0 };
    }
    case 'challenge':
      // A relayed upstream round carries its own EAP-Message, State and Reply-Message.
      if (decision.reply) return { code: Code.AccessChallenge, attributes: decision.reply };
      return { code: Code.AccessChallenge, attributes: Buffer.concat([replyMessage(decision.message), encodeAttribute(Attr.State, decision.state)]) };
  }
}

/**
 * Reply-Message attributes by text, made once: the texts are a few fixed ones (flow/decision.ts MESSAGES,
 * the configured prompt), and a reject is the most common answer under attack. Read-only: replies copy them.
 */
const replyMessages = new Map<string, Buffer>();
const REPLY_MESSAGES_KEPT = 256;

function replyMessage(text: string): Buffer {
  let bytes = replyMessages.get(text);
  if (bytes === undefined) {
    if (replyMessages.size === REPLY_MESSAGES_KEPT) replyMessages.clear();
    replyMessages.set(text, (bytes = encodeReplyMessage(text)));
  }
  return bytes;
}

function uint32(packet: RadiusPacket, type: number): number | undefined {
  const v = findAttribute(packet, type);
  return v?.length === 4 ? v.readUInt32BE(0) : undefined;
}

function ipv4(packet: RadiusPacket): string | undefined {
  const v = findAttribute(packet, Attr.NasIpAddress);
  return v?.length === 4 ? `${v[0]}.${v[1]}.${v[2]}.${v[3]}` : undefined;
}

/**
 * One line per decision; never the password, the code or the State. Keys (a public format, in this
 * order, absent when undefined): audit, q, user, login, client, src, nas_id, nas_ip, calling_station,
 * method, result, reason, ms, alert. Written as text (log/logger.ts writeLine): it runs for every request,
 * and an object per line plus pino's serializer and redaction cost about a third of the throughput.
 */
function auditLine(log: Logger, attempt: AccessAttempt, src: string, decision: Exclude<Decision, { kind: 'drop' }>, ms: number): void {
  const reason = decision.reason;
  // A wrong code only ever follows a right password (appended, or at the challenge): someone may hold it.
  const level = reason === 'failmode_safe' ? 'error' : reason === 'bad_code' ? 'warn' : 'info';
  // Runs for every request: with the level off (benchmarks, quiet sites) build nothing at all.
  if (!log.isLevelEnabled(level)) return;
  const { identity, username } = attempt;
  const user = identity ?? username;
  let fields = `"audit":true,"q":${attempt.q}`;
  if (user !== undefined) fields += `,"user":${JSON.stringify(user)}`;
  // The name as typed, when it differs from who it is (ALICE, CORP\alice, an alias).
  if (identity !== undefined && username !== undefined && identity !== username) fields += `,"login":${JSON.stringify(username)}`;
  fields += `,"client":${JSON.stringify(attempt.clientName)},"src":${JSON.stringify(src)}`;
  if (attempt.nasIdentifier !== undefined) fields += `,"nas_id":${JSON.stringify(attempt.nasIdentifier)}`;
  if (attempt.nasIp !== undefined) fields += `,"nas_ip":"${attempt.nasIp}"`;
  if (attempt.callingStation !== undefined) fields += `,"calling_station":${JSON.stringify(attempt.callingStation)}`;
  if (decision.method !== undefined) fields += `,"method":"${decision.method}"`;
  fields += `,"result":"${decision.kind}","reason":"${reason}","ms":${ms}`;
  if (level === 'warn') fields += ',"alert":"possible_stolen_password"';
  writeLine(log, level, fields, 'decision');
}

/** A Status-Server probe waits at most this for the engines' answers (NAS probes time out after a few seconds). */
const STATUS_PING_CAP_MS = 1500;

/**
 * Status-Server still answers Access-Accept when a shared engine is down (RFC 5997 §3: the server is
 * alive), with a Reply-Message naming what is down, as `radclient ... status` and proxy logs show it.
 * Undefined when the node has no engine that can go away (SQLite and memory).
 */
export function statusAttributes(deps: { store: Store; state: EphemeralState }, config: Config): (() => Promise<Buffer>) | undefined {
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
