// Portal sign-in: the configured first factor, then the user's second factor (TOTP code or a push),
// through the same second-factor service as RADIUS (flow/second-factor.ts): the same lockout counters
// and store locks, the same replay guard, the same per-user push limit. Only the wording is the portal's.
import type { FirstFactorResult } from '../auth/first-factor.js';
import type { HttpDeps } from '../http/deps.js';
import { MESSAGES, pushRefusalText, type RejectReason } from '../flow/decision.js';
import { DEFAULT_NAS_BUDGET_MS } from '../flow/access.js';
import { isKnownWrongPassword, isLocked, isLockedNow, signedIn, takeAttemptSlot, whereFrom } from '../flow/lockout.js';
import { identify } from '../flow/identity.js';
import { openPush, settlePush, verifyCode } from '../flow/second-factor.js';
import type { PendingPush } from '../mfa/pending.js';

/** The audit reasons of a refused portal sign-in: RADIUS's, and two of the portal's own. */
export type PortalRefusal = RejectReason | 'rate_limited' | 'upstream_challenge';
export type Refused = { kind: 'refused'; message: string; reason: PortalRefusal };

export type PasswordResult = { kind: 'signed_in'; username: string; reason: 'no_second_factor' } | { kind: 'second_factor'; username: string; totp: boolean; push: boolean } | Refused;

export type FactorResult = { kind: 'signed_in' } | { kind: 'waiting' } | Refused;

export const PORTAL_MESSAGES = {
  rateLimited: 'Too many sign-in attempts from your address. Wait a few minutes and try again.',
  notEnrolled: 'No second factor is set up for this account, and self-enrollment is turned off. Ask your helpdesk to set one up.',
  upstreamChallenge: 'Your password server asks for an extra step that the portal cannot show. Ask your helpdesk.',
  expired: 'The sign-in took too long. Start again.',
  noPush: 'No phone is activated for this account: use a code instead.',
  numberMissing: 'Type the number shown in the app.',
} as const;

/** The portal shows itself as this client in the app and the audit log. */
export const PORTAL_CLIENT = 'portal';

const ADDRESS_LIMIT = 20;
const ADDRESS_WINDOW_MS = 10 * 60_000;

/**
 * Step 1: username (canonical) and password, checked by the portal's first factor. Until the password
 * has passed, every refusal reads the same (locked or not, known or not); the audit reason differs.
 */
export async function checkPassword(deps: HttpDeps, typedUsername: string, password: string, src: string): Promise<PasswordResult> {
  const config = deps.config();
  const access = deps.access();
  const now = deps.now();
  // Per address: bounds password guessing across many usernames; per user the lockout does.
  if ((await deps.state.countBySource(`portal-sign-in:${src}`, ADDRESS_WINDOW_MS)) > ADDRESS_LIMIT) return refused('rate_limited', PORTAL_MESSAGES.rateLimited);
  // The portal is one more door: the same person as at RADIUS, the API and the CLI.
  const who = await identify(typedUsername, access.portalFirstFactor, access.usernames);
  if (who.kind === 'no_username') return refused('no_username', MESSAGES.generic);
  if (who.kind === 'unavailable') return refused('first_factor_unavailable', MESSAGES.unavailable);
  const { username, loginName } = who;
  const user = await deps.store.getUser(username);
  const where = await whereFrom(username, src, access);
  if (isLocked(user, now, where)) return refused('locked', MESSAGES.generic);
  const slot = await takeAttemptSlot(username, where, now, access);
  if (!slot) return refused('locked', MESSAGES.generic);
  if (await isKnownWrongPassword(username, password, access)) {
    await slot.release();
    await access.portalFirstFactor.waitAsIfChecked?.();
    return refused('bad_password', MESSAGES.generic);
  }
  const context = { typedUsername, loginName, deadline: now + DEFAULT_NAS_BUDGET_MS, lane: where.familiar ? ('familiar' as const) : ('other' as const) };
  let first: FirstFactorResult;
  try {
    first = await access.portalFirstFactor.check(username, password, user, context);
  } catch (err) {
    await slot.release();
    throw err;
  }
  if (first.kind === 'reject') {
    if (first.reason === 'unknown_user') await slot.release();
    else await slot.fail(first.reason, { wrongPassword: password });
    return refused(first.reason, MESSAGES.generic);
  }
  await slot.release();
  if (first.kind === 'unavailable') return refused('first_factor_unavailable', MESSAGES.unavailable);
  if (first.kind === 'challenge') return refused('upstream_challenge', PORTAL_MESSAGES.upstreamChallenge);
  // A lock that landed while the password was checked (a burst of guesses) still stands.
  if (await isLockedNow(username, now, access, where)) return refused('locked', MESSAGES.generic);
  if (access.policy.profileOf(username, user, first.groups).method === 'deny') return refused('method_deny', MESSAGES.deny);
  const devices = await deps.store.devices.list(username);
  const totp = user?.totp != null;
  const push = devices.length > 0;
  if (totp || push) return { kind: 'second_factor', username, totp, push };
  if (!config.portal.allow_user_enrollment) return refused('not_enrolled', PORTAL_MESSAGES.notEnrolled);
  await signedIn(username, where, access);
  return { kind: 'signed_in', username, reason: 'no_second_factor' };
}

/** Step 2a: a TOTP code, checked as RADIUS checks it (window, one use per step, lockout). */
export async function checkCode(deps: HttpDeps, username: string, code: string, src: string): Promise<FactorResult> {
  const access = deps.access();
  const user = await deps.store.getUser(username);
  const where = await whereFrom(username, src, access);
  const r = await verifyCode({ username, user, where, code }, deps.now(), access);
  if (r.ok) {
    await signedIn(username, where, access);
    return { kind: 'signed_in' };
  }
  if (r.reason === 'not_enrolled') return refused(r.reason, MESSAGES.notEnrolled);
  return refused(r.reason, r.locked ? MESSAGES.locked : r.reason === 'replay' ? MESSAGES.replay : 'Wrong code. Check the time on your phone and type the current code.');
}

/** Step 2b: a push to the user's phones; the page then waits for the answer. */
export async function sendPush(deps: HttpDeps, username: string, src: string): Promise<{ kind: 'sent'; push: PendingPush } | Refused> {
  const access = deps.access();
  const user = await deps.store.getUser(username);
  const request = { username, user, clientName: PORTAL_CLIENT, nasIp: undefined, nasIdentifier: 'Self-service portal', callingStation: src, numberMatching: access.settings.push.number_matching };
  const opened = await openPush(request, access);
  if (opened.ok) return { kind: 'sent', push: opened.push };
  switch (opened.reason) {
    case 'no_device':
      return refused(opened.reason, PORTAL_MESSAGES.noPush);
    case 'push_rate_limited':
      return refused(opened.reason, MESSAGES.rateLimited);
    case 'push_token_stale':
      return refused(opened.reason, MESSAGES.tokenStale);
    case 'push_unavailable':
      return refused(opened.reason, MESSAGES.pushUnavailable);
  }
}

/** Step 2b, later: the phone's answer (and the number typed back, with number matching). */
export async function checkPush(deps: HttpDeps, username: string, pushId: string, typedNumber: string | undefined, src: string): Promise<FactorResult> {
  const access = deps.access();
  const push = await deps.pending.get(pushId);
  if (!push || push.username !== username) return refused('push_timeout', MESSAGES.pushTimeout);
  if (!push.outcome) return { kind: 'waiting' };
  if (push.outcome.kind === 'approve' && push.number !== undefined && !typedNumber?.trim()) return { kind: 'waiting' };
  const where = await whereFrom(username, src, access);
  const settled = await settlePush({ push, typedNumber: typedNumber?.trim(), where }, deps.now(), access);
  if (settled.ok) {
    await signedIn(username, where, access);
    return { kind: 'signed_in' };
  }
  if (settled.reason === 'claimed_elsewhere') return refused('push_timeout', MESSAGES.pushTimeout);
  if (settled.reason === 'number_mismatch') return refused('number_mismatch', settled.locked ? MESSAGES.locked : MESSAGES.numberMismatch);
  return refused(settled.reason, pushRefusalText(settled.reason));
}

function refused(reason: PortalRefusal, message: string): Refused {
  return { kind: 'refused', reason, message };
}
