// Push approval: one push per attempt; the request is held until the phone answers, or, for number
// matching and for NAS whose timeout is too short to hold, answered with an Access-Challenge whose
// State leads back to the same push.
import { randomInt, timingSafeEqual } from 'node:crypto';
import type { Method } from '../config/schema.js';
import type { PendingPush, PendingPushes, PushOutcome } from '../mfa/pending.js';
import type { ChallengeRecord } from '../state/state.js';
import type { DeviceRecord, UserRecord } from '../store/store.js';
import type { AccessAttempt, AccessDeps, AskForCode, FirstFactorCarry } from './attempt.js';
import { newChallenge } from './challenge.js';
import { MESSAGES, reject, type Decision, type Hold } from './decision.js';
import { recordFailure, type LockoutDeps, type Where } from './lockout.js';

export type Delivery = 'sent' | 'stale' | 'unavailable';

/** After the first factor: push (or join this attempt's push), then hold (see Hold) or challenge. */
export async function startPush(
  attempt: AccessAttempt,
  username: string,
  user: UserRecord | undefined,
  method: Method,
  reply: Buffer,
  deps: AccessDeps,
  askForCode: AskForCode,
  carried?: FirstFactorCarry,
): Promise<Decision | Hold> {
  const settings = deps.config.mfa.push;
  const devices = await deps.store.devices.list(username);
  if (devices.length === 0) {
    if (settings.no_device === 'totp' && user?.totp) return askForCode(attempt, username, user, method, deps, carried);
    return reject(method, 'no_device', MESSAGES.noDevice);
  }
  const client = deps.policy.client(attempt.clientName);
  const numberMatching = client.numberMatching ?? settings.number_matching;
  const holdLimit = client.holdBudgetMs;

  // One push per attempt, across nodes: a request of an attempt that already has one joins it.
  const { push, created } = await deps.pending.join(
    {
      username,
      clientName: attempt.clientName,
      nasIp: attempt.nasIp,
      nasIdentifier: attempt.nasIdentifier,
      callingStation: attempt.callingStation,
      pinRequired: settings.pin === 'required' || (settings.pin === 'optional' && user?.pinHash != null),
      number: numberMatching ? String(randomInt(10, 100)) : undefined,
    },
    settings.timeout,
    attempt.arrival,
  );
  if (created) {
    if ((await deps.state.increment(`push:${username}`, settings.rate_limit.window)) > settings.rate_limit.max) {
      await deps.pending.decide(push.id, { kind: 'timeout' });
      return reject(method, 'push_rate_limited', MESSAGES.rateLimited);
    }
    const delivery = await deliverPush(push, devices, deps);
    // Unless the phone answered meanwhile (an app polls /pending when opened): then its answer stands.
    if (delivery !== 'sent' && (await deps.pending.decide(push.id, { kind: 'timeout' }))) {
      if (delivery === 'stale') return reject(method, 'push_token_stale', MESSAGES.tokenStale);
      if (deps.config.mfa.failmode === 'safe') return { kind: 'accept', method, reason: 'failmode_safe', reply };
      return reject(method, 'push_unavailable', MESSAGES.pushUnavailable, false);
    }
  }

  if (push.number !== undefined || settings.timeout > holdLimit) {
    return pushChallenge(attempt, username, method, push, push.number !== undefined ? 'number_requested' : 'approve_then_enter', deps, carried);
  }
  return { kind: 'hold', pushId: push.id, settle: (outcome) => fromOutcome(outcome, method, reply) };
}

/** The answer to a push challenge: wait (within what the NAS allows) for the phone, then check the number. */
export async function answerPushChallenge(
  attempt: AccessAttempt,
  username: string,
  record: ChallengeRecord,
  typed: string,
  reply: Buffer,
  deps: AccessDeps,
): Promise<Decision> {
  const method = record.method as Method;
  const push = await deps.pending.get(record.pushId!);
  if (!push || push.username !== username) return reject(method, 'bad_state', MESSAGES.badState);
  const holdLimit = deps.policy.client(attempt.clientName).holdBudgetMs;
  const outcome = push.outcome ?? (await deps.pending.wait(push.id, Math.min(holdLimit, push.expires - deps.now())));
  if (!outcome) return pushChallenge(attempt, username, method, push, 'push_pending', deps, record.firstFactor);
  const judged = await judgePushAnswer(deps.pending, push, typed, attempt.where!, attempt.receivedAt, deps);
  if (judged.kind === 'claimed_elsewhere') return reject(method, 'bad_state', MESSAGES.badState);
  if (judged.kind === 'number_mismatch') return reject(method, 'number_mismatch', judged.locked ? MESSAGES.locked : MESSAGES.numberMismatch);
  return fromOutcome(judged.outcome, method, reply);
}

export type JudgedAnswer = { kind: 'outcome'; outcome: PushOutcome } | { kind: 'number_mismatch'; locked: boolean } | { kind: 'claimed_elsewhere' };

/**
 * Judges the one answer that may use a decided push (RADIUS and the portal alike): the outcome is
 * claimed first, once across every node (PendingPushes.claim is one atomic step), and only the claimer
 * compares the typed number. Every other answer to the same push, however many were waiting for the
 * approval on however many nodes, gets `claimed_elsewhere` and no comparison.
 */
export async function judgePushAnswer(pending: PendingPushes, push: PendingPush, typedNumber: string | undefined, where: Where, now: number, deps: LockoutDeps): Promise<JudgedAnswer> {
  const outcome = await pending.claim(push.id);
  if (!outcome) return { kind: 'claimed_elsewhere' };
  if (outcome.kind === 'approve' && push.number !== undefined && !sameText(typedNumber ?? '', push.number)) {
    return { kind: 'number_mismatch', locked: await recordFailure(push.username, where, 'number_mismatch', now, deps) };
  }
  return { kind: 'outcome', outcome };
}

async function pushChallenge(
  attempt: AccessAttempt,
  username: string,
  method: Method,
  push: PendingPush,
  reason: 'number_requested' | 'approve_then_enter' | 'push_pending',
  deps: AccessDeps,
  carried: FirstFactorCarry,
): Promise<Decision> {
  const record: ChallengeRecord = { username, clientName: attempt.clientName, method, pushId: push.id, expires: push.expires, firstFactor: carried };
  const state = push.number === undefined ? await newChallenge(deps.state, record) : await numberChallengeState(push, record, reason === 'push_pending', deps);
  const message = reason === 'push_pending' ? MESSAGES.notYetApproved : reason === 'number_requested' ? MESSAGES.enterNumber : MESSAGES.approveThenEnter;
  return { kind: 'challenge', method, reason, state, message };
}

/**
 * A number-matching push has one outstanding State, which every request of the attempt is given: an
 * answer takes it, so a second guess can only follow once that answer is judged or has given up
 * (`renew`: it was answered before the phone, and the next prompt needs a fresh State).
 */
async function numberChallengeState(push: PendingPush, record: ChallengeRecord, renew: boolean, deps: AccessDeps): Promise<Buffer> {
  const before = push.challengeState;
  if (before !== undefined && !renew) return Buffer.from(before, 'hex');
  const state = await newChallenge(deps.state, record);
  const mine = state.toString('hex');
  const standing = await deps.pending.offerChallengeState(push.id, before, mine);
  if (standing !== undefined && standing !== mine) {
    // Another request of the attempt (on this node or another) stored one first: keep only that one.
    await deps.state.takeChallenge(mine);
    return Buffer.from(standing, 'hex');
  }
  return state;
}

function fromOutcome(outcome: PushOutcome | undefined, method: Method, reply: Buffer): Decision {
  switch (outcome?.kind) {
    case 'approve':
      return { kind: 'accept', method, reason: 'push_approved', reply };
    case 'deny':
      return reject(method, 'push_denied', MESSAGES.pushDenied);
    case 'fraud':
      return reject(method, 'fraud', MESSAGES.fraud);
    case 'locked':
      return reject(method, 'locked', MESSAGES.locked);
    default:
      return reject(method, 'push_timeout', MESSAGES.pushTimeout);
  }
}

/** What delivery needs: shared by RADIUS pushes and portal sign-ins. */
export type DeliveryDeps = Pick<AccessDeps, 'pushSender' | 'store' | 'config'>;

/**
 * Sends the push to every device that has a live token. A device without a token, or with a kind of
 * token no sender is configured for (a Web Push subscription without mobile_app.web_push), polls, so
 * it counts as reached. Stale tokens are marked so the app is asked for a new one.
 */
export async function deliverPush(push: PendingPush, devices: DeviceRecord[], deps: DeliveryDeps): Promise<Delivery> {
  if (!deps.pushSender) return 'sent';
  const targets = devices.filter((d) => d.pushToken && !d.pushTokenStale);
  const results = await Promise.all(targets.map((d) => sendTo(d, push, deps)));
  if (results.includes('sent') || results.includes('polls') || devices.some((d) => !d.pushToken)) return 'sent';
  return results.includes('unavailable') ? 'unavailable' : 'stale';
}

async function sendTo(device: DeviceRecord, push: PendingPush, deps: DeliveryDeps): Promise<Delivery | 'polls'> {
  const result = await deps.pushSender!.send(device.pushToken!, { requestId: push.id, text: deps.config.mfa.push.text, ttlMs: push.expires - push.createdAt });
  if (result.ok) return 'sent';
  if (result.kind === 'no_sender') return 'polls';
  if (result.kind === 'stale_token') await deps.store.devices.markPushTokenStale(device.id);
  return result.kind === 'stale_token' ? 'stale' : 'unavailable';
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
