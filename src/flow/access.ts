// The decision for one Access-Request: first factor, then the second factor the policy picks.
// Knows nothing of sockets or packet bytes.
import { randomBytes } from 'node:crypto';
import type { Config, Method } from '../config/schema.js';
import type { FirstFactor } from '../auth/first-factor.js';
import type { PendingPushes } from '../mfa/pending.js';
import type { PushSender } from '../mfa/push-sender.js';
import { verifyTotp } from '../mfa/totp.js';
import type { EphemeralState } from '../state/state.js';
import type { Store, UserRecord } from '../store/store.js';
import { MESSAGES, reject, type Decision } from './decision.js';
import { clearFailures, isLocked, recordFailure } from './lockout.js';
import type { Policy } from './policy.js';
import { answerPushChallenge, startPush } from './push.js';

export type { Decision } from './decision.js';

export interface AccessAttempt {
  q: number;
  clientName: string;
  username: string | undefined;
  /** What the user typed in the password field; undefined for non-PAP requests. */
  password: string | undefined;
  state: Buffer | undefined;
  nasIp: string | undefined;
  nasIdentifier: string | undefined;
  callingStation: string | undefined;
  receivedAt: number;
}

export interface AccessDeps {
  config: Config;
  policy: Policy;
  store: Store;
  state: EphemeralState;
  firstFactor: FirstFactor;
  pending: PendingPushes;
  /** undefined = no push service configured: devices poll. */
  pushSender: PushSender | undefined;
  now: () => number;
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

  // totp needs a code after the password; auto takes one if it is there, else pushes.
  const totpSettings = deps.config.mfa.totp;
  const digits = user?.totp?.digits ?? totpSettings.digits;
  let typedPassword = password;
  let code: string | undefined;
  if (method === 'totp' || method === 'auto') {
    const split = splitCode(password, digits, totpSettings.separator);
    if (split) {
      typedPassword = split.password;
      code = split.code;
    } else if (method === 'totp') {
      return reject(method, 'code_missing', MESSAGES.codeMissing(digits, totpSettings.separator));
    }
  }

  const first = await deps.firstFactor.check(username, typedPassword, user);
  if (first.kind === 'unavailable') return reject(method, 'first_factor_unavailable', MESSAGES.unavailable, false);
  if (first.kind === 'reject') {
    if (first.reason !== 'unknown_user') await recordFailure(username, first.reason, attempt.receivedAt, deps);
    return reject(method, first.reason, MESSAGES.generic);
  }

  if (code !== undefined) return checkCode(attempt, username, user, code, method, profile.reply, deps);
  switch (method) {
    case 'none':
      return { kind: 'accept', method, reason: 'method_none', reply: profile.reply };
    case 'challenge':
      return askForCode(attempt, username, user, method, deps);
    case 'push':
    case 'auto':
      return startPush(attempt, username, user, method, profile.reply, deps, askForCode);
    case 'totp':
      throw new Error('unreachable: totp without a code was rejected above');
  }
}

/** Access-Challenge asking for the TOTP code; the State is random, single-use and expires. */
async function askForCode(attempt: AccessAttempt, username: string, user: UserRecord | undefined, method: Method, deps: AccessDeps): Promise<Decision> {
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

/** The request that carries a State back: its password field holds the code or the number (RFC 2865 §4.4). */
async function answerChallenge(attempt: AccessAttempt, username: string, typed: string, deps: AccessDeps): Promise<Decision> {
  const record = await deps.state.takeChallenge(attempt.state!.toString('hex'));
  if (!record || record.username !== username || record.clientName !== attempt.clientName) {
    return reject(undefined, 'bad_state', MESSAGES.badState);
  }
  const method = record.method as Method;
  const user = await deps.store.getUser(username);
  if (isLocked(user, attempt.receivedAt)) return reject(method, 'locked', MESSAGES.locked);
  // Policy may have changed since the challenge was sent: the reply attributes are today's.
  const profile = deps.policy.profileOf(username, user);
  if (record.pushId) return answerPushChallenge(attempt, username, record, typed.trim(), profile.reply, deps);
  return checkCode(attempt, username, user, typed.trim(), method, profile.reply, deps);
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
  if (step === undefined) return failed(attempt, username, method, 'bad_code', MESSAGES.generic, deps);
  // Keep the claim as long as the step can still be offered: (2 * window + 1) periods.
  const claimTtl = (2 * window + 2) * totp.period * 1000;
  if (!(await deps.state.claimTotpStep(username, step, claimTtl))) {
    return failed(attempt, username, method, 'replay', MESSAGES.replay, deps);
  }
  await clearFailures(username, deps);
  return { kind: 'accept', method, reason: 'second_factor_ok', reply };
}

async function failed(attempt: AccessAttempt, username: string, method: Method, reason: 'bad_code' | 'replay', message: string, deps: AccessDeps): Promise<Decision> {
  const locked = await recordFailure(username, reason, attempt.receivedAt, deps);
  return reject(method, reason, locked ? MESSAGES.locked : message);
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
