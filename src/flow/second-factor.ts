// The second factor, one service for every door: RADIUS (flow/access.ts, flow/push.ts), the portal
// (portal/sign-in.ts), the Mobile App API (api/routes/*) and the CLI. It checks codes (window, one use
// per step, lockout), opens pushes (rate limit, PIN, number), settles them (the phone's answer, the
// typed number) and makes and confirms enrollments. The doors only turn its outcomes into replies, as
// rlm_totp.c is glue over totp.c. Narrow settings in, the time as an argument, typed reasons out.
import { randomInt, timingSafeEqual } from 'node:crypto';
import { verifyPassword } from '../auth/password-hash.js';
import type { Config } from '../config/schema.js';
import { newTotpEnrollment, type TotpEnrollment } from '../mfa/enrollment.js';
import type { PendingPush, PendingPushes, PushAnswer, PushOutcome } from '../mfa/pending.js';
import type { PushSender } from '../mfa/push-sender.js';
import { run, wait, type Awaitable, type Flow } from '../shared/awaitable.js';
import { verifyTotp } from '../mfa/totp.js';
import { StoreError, type DeviceRecord, type Store, type UserRecord } from '../store/store.js';
import { isLocked, recordFailure, takeAttemptSlot, type AttemptSlot, type LockoutDeps, type Where } from './lockout.js';

/** What the second factor reads of the config: mfa.totp, mfa.push, mfa.lockout. Rebuilt on reload. */
export interface SecondFactorSettings {
  totp: Pick<Config['mfa']['totp'], 'window' | 'algorithm' | 'digits' | 'period'>;
  push: Pick<Config['mfa']['push'], 'pin' | 'number_matching' | 'timeout' | 'rate_limit' | 'text'>;
  lockout: Config['mfa']['lockout'];
}

export function secondFactorSettings(config: Config): SecondFactorSettings {
  const { totp, push, lockout } = config.mfa;
  return { totp, push, lockout };
}

export interface SecondFactorDeps extends LockoutDeps {
  settings: SecondFactorSettings;
  pending: PendingPushes;
  /** undefined = no push service configured: devices poll. */
  pushSender: PushSender | undefined;
}

// --- Codes -------------------------------------------------------------------------------------

export type CodeRefusal = 'locked' | 'not_enrolled' | 'bad_code' | 'replay';
/** locked: the user is locked now (before the check, or by this failure). */
export type CodeOutcome = { ok: true } | { ok: false; reason: CodeRefusal; locked: boolean };

export interface CodeAttempt {
  username: string;
  user: UserRecord | undefined;
  where: Where;
  code: string;
  /** The attempt slot the password was just checked in (a code typed with it); else one is taken here, and ended. */
  slot?: AttemptSlot;
}

/** A TOTP code: the lock, then the window, then one use per time step (RFC 6238 §5.2); failures toward lockout. */
export function verifyCode(attempt: CodeAttempt, now: number, deps: SecondFactorDeps): Awaitable<CodeOutcome> {
  return run(verifyCodeFlow(attempt, now, deps));
}

/** verifyCode's steps, for a flow that goes on with them (flow/access.ts). */
export function* verifyCodeFlow(attempt: CodeAttempt, now: number, deps: SecondFactorDeps): Flow<CodeOutcome> {
  const { username, user } = attempt;
  let slot = attempt.slot;
  if (!slot) {
    if (isLocked(user, now, attempt.where)) return { ok: false, reason: 'locked', locked: true };
    slot = yield* wait(takeAttemptSlot(username, attempt.where, now, deps));
    if (!slot) return { ok: false, reason: 'locked', locked: true };
  }
  const totp = user?.totp;
  if (!totp) {
    yield* wait(slot.release());
    return { ok: false, reason: 'not_enrolled', locked: false };
  }
  const step = verifyTotp(totp, typedCode(attempt.code), now, deps.settings.totp.window);
  const reason = step === undefined ? 'bad_code' : (yield* wait(claimStep(username, totp, step, deps))) ? undefined : 'replay';
  // The password was right (here or in the request that led to this code): a wrong code counts more.
  if (reason) return { ok: false, reason, locked: yield* wait(slot.fail(reason, { afterRightPassword: true })) };
  yield* wait(slot.succeed());
  return { ok: true };
}

/** A code as typed, by one rule at every door: "123 456" and " 123456 " are 123456. */
function typedCode(text: string): string {
  return text.replace(/\s/g, '');
}

/** A code is good once; the claim lasts as long as its step can still be offered. False: already used. */
function claimStep(username: string, totp: TotpEnrollment, step: number, deps: Pick<SecondFactorDeps, 'settings' | 'state'>): Awaitable<boolean> {
  return deps.state.claimTotpStep(username, step, (2 * deps.settings.totp.window + 2) * totp.period * 1000);
}

// --- Pushes ------------------------------------------------------------------------------------

export interface PushRequest {
  username: string;
  user: UserRecord | undefined;
  clientName: string;
  nasIp: string | undefined;
  nasIdentifier: string | undefined;
  callingStation: string | undefined;
  /** RADIUS: the NAS's port for the session (RFC 2865 §5.5), when it sends one. */
  nasPort?: number;
  numberMatching: boolean;
  /**
   * RADIUS: when the request arrived (monotonic), so that re-sent requests of one attempt join its push
   * (PendingPushes.join, on whichever node). Absent (the portal): every request opens a push of its own.
   */
  arrival?: number;
}

export type PushRefusal = 'no_device' | 'push_rate_limited' | 'push_token_stale' | 'push_unavailable';
export type PushOpening = { ok: true; push: PendingPush } | { ok: false; reason: PushRefusal };

/** Opens (or joins) the push of an attempt and sends it to the user's phones. */
export async function openPush(request: PushRequest, deps: SecondFactorDeps): Promise<PushOpening> {
  const { username, user } = request;
  const settings = deps.settings.push;
  const devices = await deps.store.devices.list(username);
  if (devices.length === 0) return { ok: false, reason: 'no_device' };
  const init = {
    username,
    clientName: request.clientName,
    nasIp: request.nasIp,
    nasIdentifier: request.nasIdentifier,
    callingStation: request.callingStation,
    nasPort: request.nasPort,
    pinRequired: settings.pin === 'required' || (settings.pin === 'optional' && user?.pinHash != null),
    number: request.numberMatching ? String(randomInt(10, 100)) : undefined,
  };
  // One push per attempt, across nodes: check and creation are one atomic step (PendingPushes.join),
  // so a request of an attempt that already has one joins it, at this node or another.
  const { push, created } = request.arrival === undefined ? { push: await deps.pending.create(init, settings.timeout), created: true } : await deps.pending.join(init, settings.timeout, request.arrival);
  if (!created) return { ok: true, push };
  if ((await deps.state.increment(`push:${username}`, settings.rate_limit.window)) > settings.rate_limit.max) {
    await deps.pending.decide(push.id, { kind: 'timeout' });
    return { ok: false, reason: 'push_rate_limited' };
  }
  const delivery = await deliverPush(push, devices, deps);
  // Unless the phone answered meanwhile (an app polls /pending when opened): then its answer stands.
  if (delivery !== 'sent' && (await deps.pending.decide(push.id, { kind: 'timeout' }))) return { ok: false, reason: delivery === 'stale' ? 'push_token_stale' : 'push_unavailable' };
  return { ok: true, push };
}

type Delivery = 'sent' | 'stale' | 'unavailable';

/**
 * Sends the push to every device that has a live token. A device without a token, or with a kind of
 * token no sender is configured for (a Web Push subscription without mobile_app.web_push), polls, so
 * it counts as reached. Stale tokens are marked so the app is asked for a new one.
 */
async function deliverPush(push: PendingPush, devices: DeviceRecord[], deps: SecondFactorDeps): Promise<Delivery> {
  if (!deps.pushSender) return 'sent';
  const targets = devices.filter((d) => d.pushToken && !d.pushTokenStale);
  const results = await Promise.all(targets.map((d) => sendTo(d, push, deps)));
  if (results.includes('sent') || results.includes('polls') || devices.some((d) => !d.pushToken)) return 'sent';
  return results.includes('unavailable') ? 'unavailable' : 'stale';
}

async function sendTo(device: DeviceRecord, push: PendingPush, deps: SecondFactorDeps): Promise<Delivery | 'polls'> {
  const result = await deps.pushSender!.send(device.pushToken!, { requestId: push.id, text: deps.settings.push.text, ttlMs: push.expires - push.createdAt });
  if (result.ok) return 'sent';
  if (result.kind === 'no_sender') return 'polls';
  if (result.kind === 'stale_token') await deps.store.devices.markPushTokenStale(device.id);
  return result.kind === 'stale_token' ? 'stale' : 'unavailable';
}

export interface PhoneAnswer {
  push: PendingPush;
  device: Pick<DeviceRecord, 'id' | 'name'>;
  answer: PushAnswer;
  pin: string | undefined;
}

export type AnswerRefusal = 'expired' | 'already_answered' | 'pin_required' | 'pin_not_set' | 'wrong_pin';
/** locked: a wrong PIN reached the lockout limit (the push then ends as locked). */
export type AnswerOutcome = { ok: true } | { ok: false; reason: AnswerRefusal; locked: boolean };

/**
 * The phone's answer to its user's push (the caller checked the device's signature). An approval with
 * a PIN required needs the PIN; "fraud" locks the user until an admin unlocks.
 */
export async function answerPush(a: PhoneAnswer, now: number, deps: SecondFactorDeps): Promise<AnswerOutcome> {
  const { push, device } = a;
  if (push.outcome) return { ok: false, reason: push.outcome.kind === 'timeout' ? 'expired' : 'already_answered', locked: false };
  if (a.answer === 'approve' && push.pinRequired) {
    if (a.pin === undefined) return { ok: false, reason: 'pin_required', locked: false };
    const user = await deps.store.getUser(push.username);
    if (!user?.pinHash) return { ok: false, reason: 'pin_not_set', locked: false };
    // A phone in a stranger's hand must not guess PINs without end: its failures count toward the user's lock.
    const checked = await checkPin({ username: push.username, pinHash: user.pinHash, pin: a.pin, where: { source: 'phone', familiar: false } }, now, deps);
    if (!checked.ok) {
      if (checked.locked) await deps.pending.decide(push.id, { kind: 'locked', deviceId: device.id });
      return { ok: false, reason: 'wrong_pin', locked: checked.locked };
    }
  }
  // A report of fraud locks first: it stands whatever becomes of the push, and a lock that cannot be
  // written fails the answer (the phone may send it again) instead of being lost after the decision.
  if (a.answer === 'fraud') await deps.store.lockUser(push.username, Number.MAX_SAFE_INTEGER, `fraud reported from device ${device.id} (${device.name})`);
  // One answer per push across every node: decide is atomic, and tells the node that holds the request.
  if (!(await deps.pending.decide(push.id, { kind: a.answer, deviceId: device.id }))) {
    // Timed out meanwhile (here or by another node), or another answer came first.
    const expired = (await deps.pending.get(push.id))?.outcome?.kind === 'timeout';
    return { ok: false, reason: expired ? 'expired' : 'already_answered', locked: false };
  }
  return { ok: true };
}

export type PushVerdict = { ok: true } | { ok: false; reason: 'push_denied' | 'fraud' | 'locked' | 'push_timeout' };

/** What the phone's outcome means for the sign-in (undefined: the push is gone). */
export function pushVerdict(outcome: PushOutcome | undefined): PushVerdict {
  switch (outcome?.kind) {
    case 'approve':
      return { ok: true };
    case 'deny':
      return { ok: false, reason: 'push_denied' };
    case 'fraud':
      return { ok: false, reason: 'fraud' };
    case 'locked':
      return { ok: false, reason: 'locked' };
    default:
      return { ok: false, reason: 'push_timeout' };
  }
}

export type Settlement = PushVerdict | { ok: false; reason: 'number_mismatch'; locked: boolean } | { ok: false; reason: 'claimed_elsewhere' };

/**
 * Settles a decided push for the one answer that may use it (RADIUS and the portal alike): the outcome
 * is claimed first, once across every node (PendingPushes.claim is one atomic step), and only the
 * claimer compares the typed number. Every other answer to the same push, however many were waiting for
 * the approval on however many nodes, gets `claimed_elsewhere` and no comparison.
 */
export async function settlePush(a: { push: PendingPush; typedNumber: string | undefined; where: Where }, now: number, deps: SecondFactorDeps): Promise<Settlement> {
  const { push } = a;
  const outcome = await deps.pending.claim(push.id);
  if (!outcome) return { ok: false, reason: 'claimed_elsewhere' };
  if (outcome.kind === 'approve' && push.number !== undefined && !sameText(a.typedNumber ?? '', push.number)) {
    return { ok: false, reason: 'number_mismatch', locked: await recordFailure(push.username, a.where, 'number_mismatch', now, deps) };
  }
  return pushVerdict(outcome);
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

// --- The approval PIN ----------------------------------------------------------------------------

export type PinCheck = { ok: true } | { ok: false; locked: boolean };

/**
 * The push-approval PIN, checked the same way at every door (the phone's answer, an activation, the
 * portal's PIN change), inside an attempt slot so parallel guesses cannot outrun the lockout.
 * `where`: the phone (source "phone"), an activation, or the portal's browser.
 */
export async function checkPin(a: { username: string; pinHash: string; pin: string; where: Where }, now: number, deps: LockoutDeps): Promise<PinCheck> {
  const slot = await takeAttemptSlot(a.username, a.where, now, deps);
  if (!slot) return { ok: false, locked: true };
  const good = await verifyPassword(a.pinHash, a.pin).catch(async (err: unknown) => {
    await slot.release();
    throw err;
  });
  // A right PIN is not a sign-in on its own: the slot is given back, earlier failures stay.
  if (good) {
    await slot.release();
    return { ok: true };
  }
  return { ok: false, locked: await slot.fail('wrong_pin') };
}

// --- Enrollment --------------------------------------------------------------------------------

/**
 * A new TOTP enrollment, the same at every door: a fresh secret with the configured parameters. It
 * counts only once a code made from it is typed back (confirmEnrollment), except where an admin sets
 * it (the CLI). A secret that never reached an authenticator never replaces one that works.
 */
export function startEnrollment(settings: Pick<SecondFactorSettings, 'totp'>): TotpEnrollment {
  return newTotpEnrollment(settings.totp);
}

export type EnrollmentOutcome = { ok: true; replaced: boolean } | { ok: false; reason: 'bad_code' };

/**
 * Stores the enrollment for the user when `code` is a current code of it. The code's step is claimed
 * as a sign-in would, so the code that confirmed the enrollment cannot also open the VPN.
 */
export async function confirmEnrollment(
  a: { username: string; enrollment: TotpEnrollment; code: string },
  now: number,
  deps: Pick<SecondFactorDeps, 'settings' | 'state' | 'store'>,
): Promise<EnrollmentOutcome> {
  const step = verifyTotp(a.enrollment, typedCode(a.code), now, deps.settings.totp.window);
  if (step === undefined) return { ok: false, reason: 'bad_code' };
  await claimStep(a.username, a.enrollment, step, deps);
  const user = await deps.store.getUser(a.username);
  if (!user) await ensureUser(deps.store, a.username);
  await deps.store.setTotp(a.username, a.enrollment);
  return { ok: true, replaced: user?.totp != null };
}

/** Users known only to the directory get a store row on their first enrollment; two at once make one. */
export async function ensureUser(store: Store, username: string): Promise<void> {
  if (await store.getUser(username)) return;
  await store.addUser({ username }).catch((err: unknown) => {
    if (!(err instanceof StoreError && err.code === 'USER_EXISTS')) throw err;
  });
}
