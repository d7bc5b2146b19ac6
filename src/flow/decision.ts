// What the policy answers for one attempt, and the texts users read in Reply-Message.
import type { Method } from '../config/schema.js';
import type { PushOutcome } from '../mfa/pending.js';

export type RejectReason =
  | 'no_username'
  | 'unsupported_auth'
  | 'unknown_user'
  | 'no_password'
  | 'bad_password'
  | 'locked'
  | 'method_deny'
  | 'not_enrolled'
  | 'no_device'
  | 'code_missing'
  | 'bad_code'
  | 'replay'
  | 'bad_state'
  | 'first_factor_unavailable'
  | 'push_denied'
  | 'push_timeout'
  | 'fraud'
  | 'push_rate_limited'
  | 'push_unavailable'
  | 'push_token_stale'
  | 'number_mismatch'
  | 'state_unavailable'
  | 'store_unavailable';

export type AcceptReason = 'second_factor_ok' | 'method_none' | 'push_approved' | 'failmode_safe';
export type ChallengeReason = 'code_requested' | 'number_requested' | 'approve_then_enter' | 'push_pending' | 'upstream_challenge';

export type Decision =
  | { kind: 'accept'; method: Method; reason: AcceptReason; reply: Buffer }
  | { kind: 'reject'; method: Method | undefined; reason: RejectReason; message: string; delay: boolean }
  | { kind: 'challenge'; method: Method; reason: ChallengeReason; state: Buffer; message: string };

/**
 * Not decided yet: the request waits for the phone's answer to push `pushId`, and `settle` turns that
 * outcome (undefined: gone) into the decision. Whoever holds the request keeps only this and what it
 * needs to reply, not the request's frames and packet: 10,000 held requests are 10,000 of these.
 */
export interface Hold {
  kind: 'hold';
  pushId: string;
  settle: (outcome: PushOutcome | undefined) => Decision;
}

export const MESSAGES = {
  generic: 'Wrong username, password or code.',
  locked: 'Too many failed attempts: this account is locked. Try again later or ask your helpdesk to unlock it.',
  deny: 'This account may not sign in to the VPN. Ask your helpdesk.',
  notEnrolled: 'No authenticator is set up for this account. Enroll one first or ask your helpdesk.',
  noDevice: 'No phone is activated for this account. Activate the app first or ask your helpdesk.',
  codeMissing: (digits: number, sep: string) => `Type your password followed by ${sep ? `"${sep}" and ` : ''}the ${digits}-digit code from your authenticator app.`,
  replay: 'This code was already used. Wait for the next code and sign in again.',
  badState: 'The sign-in took too long or was already answered. Start again.',
  unavailable: 'The sign-in service cannot check passwords right now. Try again in a minute.',
  engineUnavailable: 'The sign-in service is not available right now. Try again in a minute.',
  unsupported: 'This server accepts PAP passwords only: set the VPN to PAP.',
  pushDenied: 'The sign-in was denied on your phone.',
  pushTimeout: 'Your phone did not answer in time. Sign in again and approve the request in the app.',
  fraud: 'The sign-in was reported as not yours: this account is locked. Contact your helpdesk.',
  rateLimited: 'Too many sign-in requests were sent to your phone. Wait a few minutes and try again.',
  pushUnavailable: 'Sign-in requests cannot be sent to phones right now. Use a code from the app, or try again later.',
  tokenStale: 'Your phone is no longer registered for notifications: open the app to renew it, then sign in again.',
  numberMismatch: 'The number does not match the one shown in the app.',
  enterNumber: 'Approve the request in the app on your phone, then type the number it shows here.',
  approveThenEnter: 'Approve the request in the app on your phone, then press Enter here.',
  notYetApproved: 'Not approved yet: approve the request in the app on your phone, then press Enter here.',
} as const;

export function reject(method: Method | undefined, reason: RejectReason, message: string, delay = true): Decision {
  return { kind: 'reject', method, reason, message, delay };
}
