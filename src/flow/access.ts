// The decision for one Access-Request: first factor, then the second factor the policy picks.
// Knows nothing of sockets or packet bytes.
import { randomBytes } from 'node:crypto';
import { resumptions, run, wait, type Awaitable, type Flow } from '../shared/awaitable.js';
import type { Method } from '../config/schema.js';
import type { FirstFactorResult } from '../auth/first-factor.js';
import type { ChallengeRecord } from '../state/state.js';
import { newChallenge } from './challenge.js';
import { MESSAGES, reject, type Decision, type Hold } from './decision.js';
import { isKnownWrongPassword, isLocked, isLockedNow, signedIn, takeAttemptSlot, whereFrom, type AttemptSlot, type Where } from './lockout.js';
import { rehideAll } from '../radius/proxy.js';
import { identify } from './identity.js';
import { isRelayed, relayAccess } from './relay.js';
import { answerPushChallenge, startPush } from './push.js';
import { verifyCodeFlow } from './second-factor.js';
import type { AccessAttempt, AccessDeps, FirstFactorCarry, Passed, UserAttempt } from './attempt.js';

export type { Decision, Hold } from './decision.js';
export type { AccessAttempt, AccessDeps, AskForCode, FirstFactorCarry } from './attempt.js';

/**
 * A NAS that does not declare its timeout (clients[].nas_timeout) is taken to wait this long in all:
 * common defaults are 3-5 s x 3 tries. A password check that could not start before is not started.
 */
export const DEFAULT_NAS_BUDGET_MS = 10_000;

/**
 * Decides one attempt, or says what it waits for (a push). Never throws for anything a user or NAS can
 * send. At once when every step answers at once (state in memory, the user in SQLite's cache, no password
 * check or a cached one): see shared/awaitable.ts. A bug may throw here or reject the promise.
 */
export function decideAccess(attempt: AccessAttempt, deps: AccessDeps): Awaitable<Decision | Hold> {
  return run(access(attempt, deps));
}

function* access(attempt: AccessAttempt, deps: AccessDeps): Flow<Decision | Hold> {
  const result = yield* decide(attempt, deps);
  // A sign-in makes its source familiar (flow/lockout.ts), however it was accepted; a held one when the
  // phone approves (flow/push.ts settleHeld).
  if (result.kind === 'accept') yield* wait(signedIn(attempt.identity!, attempt.where!, deps));
  return result;
}

function* decide(attempt: AccessAttempt, deps: AccessDeps): Flow<Decision | Hold> {
  const limits = deps.config.rate_limits;
  if (limits.client_per_second > 0 && !deps.rates.allow('client', attempt.clientName, limits.client_per_second, 1000)) {
    return { kind: 'drop', method: undefined, reason: 'rate_limited' };
  }
  // MS-CHAP, CHAP, EAP: relayed upstream with the upstream's own State, never taken for ours.
  if (attempt.password === undefined && attempt.nas && isRelayed(attempt.nas.packet)) return yield* wait(relayAccess(attempt, attempt.username ?? '', deps));
  if (attempt.password === undefined && !attempt.state) return reject(undefined, 'unsupported_auth', MESSAGES.unsupported, false);
  const who = yield* wait(identify(attempt.username, deps.firstFactor, deps.usernames, attempt.q));
  if (who.kind === 'no_username') return reject(undefined, 'no_username', MESSAGES.generic);
  if (who.kind === 'unavailable') return reject(undefined, 'first_factor_unavailable', MESSAGES.unavailable, false);
  const { username, loginName } = who;
  attempt.identity = username;
  const station = attempt.callingStation;
  const sourceLimited = limits.source_per_minute > 0 && station !== undefined;
  // Independent reads, both sent before either is awaited (with Redis and PostgreSQL each is a round
  // trip); but a source already over its rate, likely dropped, costs no store read. Not Promise.all: its
  // arrays and callbacks were about 600 bytes a request (heap sampling).
  const readUser = !attempt.state && !(sourceLimited && deps.rates.wouldRefuse('source', station, limits.source_per_minute, 60_000));
  const userRead = readUser ? deps.store.getUser(username) : undefined;
  // When the first read fails, the second's failure must not go unhandled (it would end the process).
  if (userRead instanceof Promise) userRead.catch(ignore);
  const where = yield* wait(whereFrom(username, sourceOf(attempt), deps));
  const prefetched = yield* wait(userRead);
  attempt.where = where;
  // A source the user signed in from is never held back by what strangers at other addresses do.
  if (sourceLimited && !where.familiar && !deps.rates.allow('source', station, limits.source_per_minute, 60_000)) {
    return { kind: 'drop', method: undefined, reason: 'rate_limited' };
  }
  // "Press Enter" at a challenge prompt: some NAS then send no User-Password at all.
  if (attempt.state) return yield* wait(answerChallenge(attempt, username, where, attempt.password ?? '', deps));

  const user = readUser ? prefetched : yield* wait(deps.store.getUser(username));
  const userReadAt = resumptions();
  // Directory groups can pick the method, which decides how the password is split: ask before the password check.
  const known = deps.firstFactor.groupsOf && deps.policy.groupsChooseMethod ? yield* wait(groupsBeforeCheck(loginName, attempt, deps)) : NO_GROUPS;
  if (known.kind === 'unavailable') return reject(undefined, 'first_factor_unavailable', MESSAGES.unavailable, false);
  const method = deps.policy.profileOf(username, user, known.groups).method;
  // Until the password has passed, every reject reads the same, and leaves as late as a checked one:
  // no username or state oracle, and no CPU spent on it.
  if (isLocked(user, attempt.receivedAt, where)) return yield* wait(refuseUnchecked(method, 'locked', deps));
  if (method === 'deny') return yield* wait(refuseUnchecked(method, 'method_deny', deps));
  const slot = yield* wait(takeAttemptSlot(username, where, attempt.receivedAt, deps));
  if (!slot) return yield* wait(refuseUnchecked(method, 'locked', deps));
  const a: UserAttempt = Object.assign(attempt, { identity: username, where, user, method });
  try {
    return yield* checkBothFactors(a, loginName, known.groups, slot, userReadAt, deps);
  } catch (err) {
    yield* wait(slot.abandon());
    throw err;
  }
}

/**
 * Inside the user's attempt slot: first factor, then the code typed with it, or the second factor to come.
 * `userReadAt`: resumptions() when a.user was read.
 */
function* checkBothFactors(a: UserAttempt, loginName: string, groups: readonly string[], slot: AttemptSlot, userReadAt: number, deps: AccessDeps): Flow<Decision | Hold> {
  const { identity: username, user, method } = a;
  // totp needs a code after the password; auto takes one if it is there, else pushes.
  const totpSettings = deps.config.mfa.totp;
  const digits = user?.totp?.digits ?? totpSettings.digits;
  const split = method === 'totp' || method === 'auto' ? splitCode(a.password!, digits, totpSettings.separator) : undefined;
  const password = split?.password ?? a.password!;
  // A NAS retry or a user retyping the same wrong password: already counted, and already known wrong.
  // (With first_factor none no password is checked, so none is known wrong: no lookup.)
  if (deps.firstFactor.type !== 'none' && (yield* wait(isKnownWrongPassword(username, password, deps)))) {
    yield* wait(slot.release());
    return yield* wait(refuseUnchecked(method, 'bad_password', deps));
  }
  const context = { q: a.q, typedUsername: a.username, loginName, nas: a.nas, deadline: a.receivedAt + nasBudgetMs(a, deps), lane: a.where.familiar ? ('familiar' as const) : ('other' as const) };
  const first = yield* wait(deps.firstFactor.check(username, password, user, context));
  if (first.kind !== 'accept' && !(first.kind === 'reject' && first.reason !== 'unknown_user')) yield* wait(slot.release());
  if (first.kind === 'unavailable') {
    return first.reason === 'overloaded' ? { kind: 'drop', method, reason: 'overloaded' } : reject(method, 'first_factor_unavailable', MESSAGES.unavailable, false);
  }
  if (first.kind === 'reject') {
    if (first.reason !== 'unknown_user') yield* wait(slot.fail(first.reason, { wrongPassword: password }));
    return reject(method, first.reason, MESSAGES.generic);
  }
  // An upstream RADIUS server that challenges itself: relay its prompt; the second factor follows its Accept.
  if (first.kind === 'challenge') return yield* wait(relayUpstreamChallenge(a, first, groups, deps));
  // A lock that landed while the password was checked (a burst of guesses in parallel) still stands. A flow
  // that has not waited since it read the user has the record a new read would give: no second lookup.
  const unchanged = resumptions() === userReadAt;
  if (unchanged ? isLocked(user, a.receivedAt, a.where) : yield* wait(isLockedNow(username, a.receivedAt, deps, a.where))) {
    yield* wait(slot.release());
    return reject(method, 'locked', MESSAGES.generic);
  }

  const after = afterFirstFactor(a, first, groups, deps);
  if (after.deny) {
    yield* wait(slot.release());
    return reject(method, 'method_deny', MESSAGES.deny, false);
  }
  if (split) return yield* checkCode(a, split.code, after.reply, slot, deps);
  yield* wait(slot.release());
  switch (method) {
    case 'none':
      return { kind: 'accept', method, reason: 'method_none', reply: after.reply };
    case 'challenge':
      return yield* wait(askForCode(a, deps, after.carried));
    case 'push':
    case 'auto':
      return yield* wait(startPush(a, after, deps, askForCode));
    case 'totp':
      // The whole field was the right password: now it is safe to say what is missing.
      return reject(method, 'code_missing', MESSAGES.codeMissing(digits, totpSettings.separator));
    case 'deny':
      throw new Error('unreachable: deny was rejected before the password check');
  }
}

type KnownGroups = { kind: 'ok'; groups: readonly string[] } | { kind: 'unavailable' };
/** No backend that can tell groups before the password check, or no group that sets a method. */
const NO_GROUPS: KnownGroups = Object.freeze({ kind: 'ok', groups: Object.freeze([]) });

/** Directory groups before the password check (when a backend can tell and some group sets a method). */
async function groupsBeforeCheck(username: string, attempt: AccessAttempt, deps: AccessDeps): Promise<KnownGroups> {
  const r = await deps.firstFactor.groupsOf!(username, { q: attempt.q });
  return r.kind === 'ok' ? r : { kind: 'unavailable' };
}

type Accepted = Extract<FirstFactorResult, { kind: 'accept' }>;

/**
 * Reply attributes after the first factor accepted: the upstream Access-Accept's own (Class, Filter-Id, ...)
 * first, then those of the groups (including directory groups) and config user. Groups read only with the
 * user's own bind can still deny, but no longer change the method: the password was already split.
 */
function afterFirstFactor(a: UserAttempt, first: Accepted, groups: readonly string[], deps: AccessDeps): Passed & { deny: boolean } {
  const allGroups = first.groups ? [...new Set([...groups, ...first.groups])] : groups;
  const profile = deps.policy.profileOf(a.identity, a.user, allGroups);
  const reply = first.reply?.length ? Buffer.concat([first.reply, profile.reply]) : profile.reply;
  const upstream = first.reply?.length ? { reply: first.reply.toString('hex'), hiddenFor: a.nas?.packet.authenticator.toString('hex') } : {};
  const carried: ChallengeRecord['firstFactor'] = first.reply?.length || allGroups.length ? { ...upstream, groups: allGroups } : undefined;
  return { reply, carried, deny: profile.method === 'deny' };
}

/**
 * The upstream reply a challenge carried, for the Accept of the request that answers it: its hidden
 * attributes (RFC 2548 MPPE keys, RFC 2868 Tunnel-Password) were hidden with the first request's
 * Request Authenticator, and the NAS decrypts them with this one's.
 */
function carriedReply(attempt: AccessAttempt, carried: NonNullable<ChallengeRecord['firstFactor']>): Buffer {
  const reply = Buffer.from(carried.reply!, 'hex');
  const nas = attempt.nas;
  if (!carried.hiddenFor || !nas) return reply;
  const secret = nas.client.secret;
  return rehideAll(reply, { fromSecret: secret, fromAuthenticator: Buffer.from(carried.hiddenFor, 'hex'), toSecret: secret, toAuthenticator: nas.packet.authenticator, random: randomBytes });
}

/** RFC 2865 §4.4 through a proxy: our own State to the NAS, the upstream's kept here to send back with the answer. */
async function relayUpstreamChallenge(a: UserAttempt, first: Extract<FirstFactorResult, { kind: 'challenge' }>, groups: readonly string[], deps: AccessDeps): Promise<Decision> {
  const state = await newChallenge(deps.state, {
    username: a.identity,
    clientName: a.clientName,
    method: a.method,
    expires: a.receivedAt + deps.config.mfa.challenge.timeout,
    firstFactor: { upstreamState: first.upstreamState.toString('hex'), groups },
  });
  return { kind: 'challenge', method: a.method, reason: 'upstream_challenge', state, message: first.message };
}

/** The answer to a relayed upstream challenge goes upstream; after its Accept the second factor runs as usual. */
async function answerUpstreamChallenge(a: UserAttempt, typed: string, record: ChallengeRecord, deps: AccessDeps): Promise<Decision | Hold> {
  const { identity: username, method } = a;
  const groups = record.firstFactor?.groups ?? [];
  const upstreamState = Buffer.from(record.firstFactor!.upstreamState!, 'hex');
  const slot = await takeAttemptSlot(username, a.where, a.receivedAt, deps);
  if (!slot) return reject(method, 'locked', MESSAGES.generic);
  let first: FirstFactorResult;
  try {
    first = await deps.firstFactor.check(username, typed, a.user, { q: a.q, upstreamState, typedUsername: a.username, nas: a.nas });
  } catch (err) {
    await slot.release();
    throw err;
  }
  if (first.kind === 'reject') await slot.fail(first.reason);
  else await slot.release();
  if (first.kind === 'unavailable') return reject(method, 'first_factor_unavailable', MESSAGES.unavailable, false);
  if (first.kind === 'reject') return reject(method, first.reason, MESSAGES.generic);
  if (first.kind === 'challenge') return relayUpstreamChallenge(a, first, groups, deps);
  if (await isLockedNow(username, a.receivedAt, deps, a.where)) return reject(method, 'locked', MESSAGES.generic);
  const after = afterFirstFactor(a, first, groups, deps);
  if (after.deny) return reject(method, 'method_deny', MESSAGES.deny, false);
  switch (method) {
    case 'none':
      return { kind: 'accept', method, reason: 'method_none', reply: after.reply };
    case 'push':
    case 'auto':
      return startPush(a, after, deps, askForCode);
    default:
      // A code typed with the password was used up by the upstream's own challenge: ask for a fresh one.
      return askForCode(a, deps, after.carried);
  }
}

/** Access-Challenge asking for the TOTP code; the State is random, single-use and expires. */
async function askForCode(a: UserAttempt, deps: AccessDeps, carried: FirstFactorCarry): Promise<Decision> {
  if (!a.user?.totp) return reject(a.method, 'not_enrolled', MESSAGES.generic);
  const state = await newChallenge(deps.state, {
    username: a.identity,
    clientName: a.clientName,
    method: a.method,
    expires: a.receivedAt + deps.config.mfa.challenge.timeout,
    firstFactor: carried,
  });
  return { kind: 'challenge', method: a.method, reason: 'code_requested', state, message: deps.config.mfa.challenge.prompt };
}

/** The request that carries a State back: its password field holds the code or the number (RFC 2865 §4.4). */
async function answerChallenge(attempt: AccessAttempt, username: string, where: Where, typed: string, deps: AccessDeps): Promise<Decision | Hold> {
  const record = await deps.state.takeChallenge(attempt.state!.toString('hex'));
  const user = await deps.store.getUser(username);
  if (!record || record.username !== username || record.clientName !== attempt.clientName) {
    return reject(deps.policy.profileOf(username, user).method, 'bad_state', MESSAGES.badState);
  }
  const a: UserAttempt = Object.assign(attempt, { identity: username, where, user, method: record.method as Method });
  if (isLocked(user, a.receivedAt, where)) return reject(a.method, 'locked', MESSAGES.locked);
  if (record.firstFactor?.upstreamState) return answerUpstreamChallenge(a, typed, record, deps);
  // Policy may have changed since the challenge was sent: the reply attributes are today's.
  const profile = deps.policy.profileOf(username, user, record.firstFactor?.groups);
  const reply = record.firstFactor?.reply ? Buffer.concat([carriedReply(a, record.firstFactor), profile.reply]) : profile.reply;
  if (record.pushId) return answerPushChallenge(a, record, typed.trim(), reply, deps);
  return run(checkCode(a, typed, reply, undefined, deps));
}

/** A code, in the slot the password was checked in (typed with it) or in one of its own (a challenge's answer). */
function* checkCode(a: UserAttempt, code: string, reply: Buffer, slot: AttemptSlot | undefined, deps: AccessDeps): Flow<Decision> {
  const r = yield* verifyCodeFlow({ username: a.identity, user: a.user, where: a.where, code, slot }, a.receivedAt, deps);
  if (r.ok) return { kind: 'accept', method: a.method, reason: 'second_factor_ok', reply };
  if (r.reason === 'not_enrolled') return reject(a.method, r.reason, MESSAGES.generic);
  return reject(a.method, r.reason, r.locked ? MESSAGES.locked : r.reason === 'replay' ? MESSAGES.replay : MESSAGES.generic);
}

/** "s3cret123456" or, with a separator, "s3cret,123456" -> password and code; undefined when no code is there. */
export function splitCode(typed: string, digits: number, separator: string): { password: string; code: string } | undefined {
  if (separator) {
    const at = typed.lastIndexOf(separator);
    if (at < 0) return undefined;
    const code = typed.slice(at + separator.length).trim();
    return /^\d+$/.test(code) && code.length === digits ? { password: typed.slice(0, at), code } : undefined;
  }
  if (typed.length < digits) return undefined;
  const code = typed.slice(typed.length - digits);
  return /^\d+$/.test(code) ? { password: typed.slice(0, typed.length - digits), code } : undefined;
}

function ignore(): void {}

/** RFC 2865 §5.31: Calling-Station-Id is the user's address as the NAS saw it; else the NAS itself. */
function sourceOf(attempt: AccessAttempt): string {
  return attempt.callingStation ?? attempt.nasIp ?? `client:${attempt.clientName}`;
}

/** A refusal decided without any check (locked, denied, a known wrong password): it waits as a checked one would. */
async function refuseUnchecked(method: Method, reason: 'locked' | 'method_deny' | 'bad_password', deps: AccessDeps): Promise<Decision> {
  await deps.firstFactor.waitAsIfChecked?.();
  return reject(method, reason, MESSAGES.generic);
}

/** How long the NAS waits for this answer in all (nas_timeout x tries); DEFAULT_NAS_BUDGET_MS when the client does not say. */
function nasBudgetMs(attempt: AccessAttempt, deps: AccessDeps): number {
  const budget = deps.policy.client(attempt.clientName).holdBudgetMs;
  return Number.isFinite(budget) ? budget : DEFAULT_NAS_BUDGET_MS;
}
