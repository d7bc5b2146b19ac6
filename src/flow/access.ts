// The decision for one Access-Request: first factor, then the second factor the policy picks.
// Knows nothing of sockets or packet bytes.
import { randomBytes } from 'node:crypto';
import type { Config, Method } from '../config/schema.js';
import type { FirstFactor } from '../auth/first-factor.js';
import { verifyTotp } from '../mfa/totp.js';
import type { EphemeralState } from '../state/state.js';
import type { Store, UserRecord } from '../store/store.js';
import type { Policy } from './policy.js';

export interface AccessAttempt {
  q: number;
  clientName: string;
  username: string | undefined;
  /** What the user typed in the password field; undefined for non-PAP requests. */
  password: string | undefined;
  state: Buffer | undefined;
  receivedAt: number;
}

export type RejectReason =
  | 'no_username'
  | 'no_password'
  | 'unsupported_auth'
  | 'unknown_user'
  | 'bad_password'
  | 'locked'
  | 'method_deny'
  | 'not_enrolled'
  | 'code_missing'
  | 'bad_code'
  | 'replay'
  | 'bad_state'
  | 'first_factor_unavailable';

export type Decision =
  | { kind: 'accept'; method: Method; reason: 'second_factor_ok' | 'method_none'; reply: Buffer }
  | { kind: 'reject'; method: Method | undefined; reason: RejectReason; message: string; delay: boolean }
  | { kind: 'challenge'; method: Method; reason: 'code_requested'; state: Buffer; message: string };

export interface AccessDeps {
  config: Config;
  policy: Policy;
  store: Store;
  state: EphemeralState;
  firstFactor: FirstFactor;
  now: () => number;
}

const MESSAGES = {
  generic: 'Wrong username, password or code.',
  locked: 'Too many failed attempts: this account is locked. Try again later or ask your helpdesk to unlock it.',
  deny: 'This account may not sign in to the VPN. Ask your helpdesk.',
  notEnrolled: 'No authenticator is set up for this account. Enroll one first or ask your helpdesk.',
  codeMissing: (digits: number, sep: string) => `Type your password followed by ${sep ? `"${sep}" and ` : ''}the ${digits}-digit code from your authenticator app.`,
  replay: 'This code was already used. Wait for the next code and sign in again.',
  badState: 'The sign-in took too long or was already answered. Start again.',
  unavailable: 'The sign-in service cannot check passwords right now. Try again in a minute.',
  unsupported: 'This server accepts PAP passwords only: set the VPN to PAP.',
} as const;

function reject(method: Method | undefined, reason: RejectReason, message: string, delay = true): Decision {
  return { kind: 'reject', method, reason, message, delay };
}

/** Decides one attempt. Never throws for anything a user or NAS can send. */
export async function decideAccess(attempt: AccessAttempt, deps: AccessDeps): Promise<Decision> {
  const { username, password } = attempt;
  if (!username) return reject(undefined, 'no_username', MESSAGES.generic);
  if (password === undefined) return reject(undefined, 'unsupported_auth', MESSAGES.unsupported, false);
  if (attempt.state) return answerChallenge(attempt, username, password, deps);

  const user = await deps.store.getUser(username);
  if (isLocked(user, attempt.receivedAt)) return reject(undefined, 'locked', MESSAGES.locked);
  const profile = deps.policy.profileOf(username, user);
  const method = profile.method;
  if (method === 'deny') return reject(method, 'method_deny', MESSAGES.deny, false);

  const totpSettings = deps.config.mfa.totp;
  let typedPassword = password;
  let code: string | undefined;
  if (method === 'totp') {
    const split = splitCode(password, user?.totp?.digits ?? totpSettings.digits, totpSettings.separator);
    if (!split) return reject(method, 'code_missing', MESSAGES.codeMissing(user?.totp?.digits ?? totpSettings.digits, totpSettings.separator));
    typedPassword = split.password;
    code = split.code;
  }

  const first = await deps.firstFactor.check(username, typedPassword, user);
  if (first.kind === 'unavailable') return reject(method, 'first_factor_unavailable', MESSAGES.unavailable, false);
  if (first.kind === 'reject') return fail(attempt, username, method, first.reason, MESSAGES.generic, deps);

  switch (method) {
    case 'none':
      return { kind: 'accept', method, reason: 'method_none', reply: profile.reply };
    case 'totp':
      return checkCode(attempt, username, user, code!, method, profile.reply, deps);
    case 'challenge': {
      if (!user?.totp) return reject(method, 'not_enrolled', MESSAGES.notEnrolled);
      const state = randomBytes(16);
      await deps.state.putChallenge(state.toString('hex'), {
        username,
        clientName: attempt.clientName,
        method,
        expires: attempt.receivedAt + deps.config.mfa.challenge.timeout,
      });
      return { kind: 'challenge', method, reason: 'code_requested', state, message: deps.config.mfa.challenge.prompt };
    }
  }
}

/** The request that carries a State back: its password field holds the code (RFC 2865 §4.4). */
async function answerChallenge(attempt: AccessAttempt, username: string, code: string, deps: AccessDeps): Promise<Decision> {
  const record = await deps.state.takeChallenge(attempt.state!.toString('hex'));
  if (!record || record.username !== username || record.clientName !== attempt.clientName) {
    return reject(undefined, 'bad_state', MESSAGES.badState);
  }
  const user = await deps.store.getUser(username);
  if (isLocked(user, attempt.receivedAt)) return reject('challenge', 'locked', MESSAGES.locked);
  // Policy may have changed since the challenge was sent: the reply attributes are today's.
  const profile = deps.policy.profileOf(username, user);
  return checkCode(attempt, username, user, code.trim(), 'challenge', profile.reply, deps);
}

async function checkCode(
  attempt: AccessAttempt,
  username: string,
  user: UserRecord | undefined,
  code: string,
  method: Method,
  reply: Buffer,
  deps: AccessDeps,
): Promise<Decision> {
  const totp = user?.totp;
  if (!totp) return reject(method, 'not_enrolled', MESSAGES.notEnrolled);
  const window = deps.config.mfa.totp.window;
  const step = verifyTotp(totp, code, attempt.receivedAt, window);
  if (step === undefined) return fail(attempt, username, method, 'bad_code', MESSAGES.generic, deps);
  // Keep the claim as long as the step can still be offered: (2 * window + 1) periods.
  const claimTtl = (2 * window + 2) * totp.period * 1000;
  if (!(await deps.state.claimTotpStep(username, step, claimTtl))) {
    return fail(attempt, username, method, 'replay', MESSAGES.replay, deps);
  }
  if (deps.config.mfa.lockout.max_failures > 0) await deps.state.clearFailures(username);
  return { kind: 'accept', method, reason: 'second_factor_ok', reply };
}

/** Counts a failure toward lockout; the one that reaches the limit locks the user in the store. */
async function fail(attempt: AccessAttempt, username: string, method: Method, reason: RejectReason, message: string, deps: AccessDeps): Promise<Decision> {
  const { max_failures, duration } = deps.config.mfa.lockout;
  if (max_failures === 0 || reason === 'unknown_user') return reject(method, reason, message);
  const count = await deps.state.addFailure(username, duration);
  if (count < max_failures) return reject(method, reason, message);
  await deps.state.clearFailures(username);
  await deps.store.lockUser(username, attempt.receivedAt + duration, `${count} failed attempts (last: ${reason})`);
  return reject(method, reason, MESSAGES.locked);
}

function isLocked(user: UserRecord | undefined, now: number): boolean {
  return user?.lockedUntil != null && user.lockedUntil > now;
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
