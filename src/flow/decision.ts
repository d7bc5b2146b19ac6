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
  /** MS-CHAP / EAP with a first factor that cannot check them (local, ldap, none). */
  | 'non_pap_unsupported'
  /** MS-CHAP / EAP for a user whose method needs a typed code, with mfa.non_pap: reject. */
  | 'non_pap_needs_code'
  /** MS-CHAP / EAP where the push would need a second prompt (number matching, a NAS timeout too short to hold). */
  | 'non_pap_needs_prompt'
  /** PEAP/TTLS with an anonymous outer identity and no inner User-Name in the upstream Accept: whose phone? */
  | 'anonymous_identity'
  | 'state_unavailable'
  | 'store_unavailable';

export type AcceptReason = 'second_factor_ok' | 'method_none' | 'push_approved' | 'failmode_safe' | 'non_pap_push_fallback';
export type ChallengeReason = 'code_requested' | 'number_requested' | 'approve_then_enter' | 'push_pending' | 'upstream_challenge' | 'upstream_round';

export type Decision =
  /** Not answered: the check could not start before the NAS gives up (overloaded), or a rate limit (rate_limits). The NAS retries. */
  | { kind: 'drop'; method: Method | undefined; reason: 'overloaded' | 'rate_limited' }
  | { kind: 'accept'; method: Method; reason: AcceptReason; reply: Buffer }
  /** reply: attributes beyond Reply-Message (EAP-Failure, MS-CHAP-Error, an upstream's own refusal). */
  | { kind: 'reject'; method: Method | undefined; reason: RejectReason; message: string; delay: boolean; reply?: Buffer }
  /** reply: a relayed upstream round whole (EAP-Message, the upstream's State); then `state` is empty. */
  | { kind: 'challenge'; method: Method | undefined; reason: ChallengeReason; state: Buffer; message: string; reply?: Buffer };

/**
 * Not decided yet: the request waits for the phone's answer to push `pushId`, and `settle` turns that
 * outcome (undefined: gone) into the decision. Whoever holds the request keeps only this and what it
 * needs to reply, not the request's frames and packet: 10,000 held requests are 10,000 of these.
 */
export interface Hold {
  kind: 'hold';
  pushId: string;
  settle(outcome: PushOutcome | undefined): Decision;
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
  nonPapUnsupported: 'MS-CHAP and EAP sign-ins need an upstream RADIUS server here: set the VPN to PAP or ask your helpdesk.',
  nonPapNeedsCode: 'This account signs in with a code, which this VPN cannot ask for. Ask your helpdesk to set up push.',
  nonPapNeedsPrompt: 'This VPN cannot show the second prompt push needs here. Ask your helpdesk.',
  anonymousIdentity: 'The sign-in did not say who you are. Ask your helpdesk.',
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

export function reject(method: Method | undefined, reason: RejectReason, message: string, delay = true): Extract<Decision, { kind: 'reject' }> {
  return { kind: 'reject', method, reason, message, delay };
}

/** What a user reads for a push that did not approve the sign-in, at every door. */
export function pushRefusalText(reason: 'push_denied' | 'fraud' | 'locked' | 'push_timeout'): string {
  switch (reason) {
    case 'push_denied':
      return MESSAGES.pushDenied;
    case 'fraud':
      return MESSAGES.fraud;
    case 'locked':
      return MESSAGES.locked;
    case 'push_timeout':
      return MESSAGES.pushTimeout;
  }
}
