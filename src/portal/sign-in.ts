// Portal sign-in: the configured first factor, then the user's second factor (TOTP code or a push).
// Failures and locks are the RADIUS ones (flow/lockout, the same counters and store locks), TOTP steps
// are claimed in the same replay guard, pushes count toward the same per-user push limit.
import { randomInt } from 'node:crypto';
import type { HttpDeps } from '../http/deps.js';
import { checkUserCode } from '../flow/code-check.js';
import { MESSAGES } from '../flow/decision.js';
import { DEFAULT_NAS_BUDGET_MS } from '../flow/access.js';
import { isKnownWrongPassword, isLocked, isLockedNow, signedIn, takeAttemptSlot, whereFrom } from '../flow/lockout.js';
import { identify } from '../flow/identity.js';
import { deliverPush, judgePushAnswer } from '../flow/push.js';
import type { PendingPush } from '../mfa/pending.js';

export type PasswordResult =
  | { kind: 'signed_in'; username: string; reason: 'no_second_factor' }
  | { kind: 'second_factor'; username: string; totp: boolean; push: boolean }
  | { kind: 'refused'; message: string; reason: string };

export type FactorResult = { kind: 'signed_in' } | { kind: 'waiting' } | { kind: 'refused'; message: string; reason: string };

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
  const first = await access.portalFirstFactor.check(username, password, user, context).catch(async (err: unknown) => {
    await slot.release();
    throw err;
  });
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
  await signedIn(username, src, access);
  return { kind: 'signed_in', username, reason: 'no_second_factor' };
}

/** Step 2a: a TOTP code, checked as RADIUS checks it (window, one use per step, lockout). */
export async function checkCode(deps: HttpDeps, username: string, code: string, src: string): Promise<FactorResult> {
  const access = deps.access();
  const now = deps.now();
  const user = await deps.store.getUser(username);
  const where = await whereFrom(username, src, access);
  if (isLocked(user, now, where)) return refused('locked', MESSAGES.locked);
  const slot = await takeAttemptSlot(username, where, now, access);
  if (!slot) return refused('locked', MESSAGES.locked);
  const r = await checkUserCode(username, user, code.replace(/\s/g, ''), now, access, slot);
  if (r.ok) {
    await signedIn(username, src, access);
    return { kind: 'signed_in' };
  }
  if (r.reason === 'not_enrolled') return refused(r.reason, MESSAGES.notEnrolled);
  return refused(r.reason, r.locked ? MESSAGES.locked : r.reason === 'replay' ? MESSAGES.replay : 'Wrong code. Check the time on your phone and type the current code.');
}

/** Step 2b: a push to the user's phones; the page then waits for the answer. */
export async function sendPush(deps: HttpDeps, username: string, src: string): Promise<{ kind: 'sent'; push: PendingPush } | { kind: 'refused'; message: string; reason: string }> {
  const access = deps.access();
  const settings = access.config.mfa.push;
  const user = await deps.store.getUser(username);
  const devices = await deps.store.devices.list(username);
  if (devices.length === 0) return refused('no_device', PORTAL_MESSAGES.noPush);
  if ((await deps.state.increment(`push:${username}`, settings.rate_limit.window)) > settings.rate_limit.max) return refused('push_rate_limited', MESSAGES.rateLimited);
  const push = await deps.pending.create(
    {
      username,
      clientName: PORTAL_CLIENT,
      nasIp: undefined,
      nasIdentifier: 'Self-service portal',
      callingStation: src,
      pinRequired: settings.pin === 'required' || (settings.pin === 'optional' && user?.pinHash != null),
      number: settings.number_matching ? String(randomInt(10, 100)) : undefined,
    },
    settings.timeout,
  );
  const delivery = await deliverPush(push, devices, access);
  if (delivery !== 'sent') {
    await deps.pending.decide(push.id, { kind: 'timeout' });
    return refused(delivery === 'stale' ? 'push_token_stale' : 'push_unavailable', delivery === 'stale' ? MESSAGES.tokenStale : MESSAGES.pushUnavailable);
  }
  return { kind: 'sent', push };
}

/** Step 2b, later: the phone's answer (and the number typed back, with number matching). */
export async function checkPush(deps: HttpDeps, username: string, pushId: string, typedNumber: string | undefined, src: string): Promise<FactorResult> {
  const access = deps.access();
  const push = await deps.pending.get(pushId);
  if (!push || push.username !== username) return refused('push_timeout', MESSAGES.pushTimeout);
  if (!push.outcome) return { kind: 'waiting' };
  if (push.outcome.kind === 'approve' && push.number !== undefined && !typedNumber?.trim()) return { kind: 'waiting' };
  const judged = await judgePushAnswer(deps.pending, push, typedNumber?.trim(), await whereFrom(username, src, access), deps.now(), access);
  if (judged.kind === 'claimed_elsewhere') return refused('push_timeout', MESSAGES.pushTimeout);
  if (judged.kind === 'number_mismatch') return refused('number_mismatch', judged.locked ? MESSAGES.locked : MESSAGES.numberMismatch);
  const outcome = judged.outcome;
  switch (outcome.kind) {
    case 'approve':
      await signedIn(username, src, access);
      return { kind: 'signed_in' };
    case 'deny':
      return refused('push_denied', MESSAGES.pushDenied);
    case 'fraud':
      return refused('fraud', MESSAGES.fraud);
    case 'locked':
      return refused('locked', MESSAGES.locked);
    default:
      return refused('push_timeout', MESSAGES.pushTimeout);
  }
}

function refused(reason: string, message: string): { kind: 'refused'; message: string; reason: string } {
  return { kind: 'refused', reason, message };
}
