// MS-CHAP, MS-CHAPv2, CHAP and EAP: no cleartext password reaches us, so the request goes to the upstream
// RADIUS server as it is, round after round (its own State passes through untouched, ours is never
// involved), and the second factor follows the upstream's final Access-Accept: a push held before the
// Accept goes on to the NAS (as the NPS extension does), or none, or deny.
import type { Method } from '../config/schema.js';
import type { RelayResult } from '../auth/first-factor.js';
import { nonPapKindOf, refusalAttributes, findInAttributes } from '../radius/proxy.js';
import { Attr, type RadiusPacket } from '../radius/packet.js';
import type { AccessAttempt, AccessDeps, UserAttempt } from './attempt.js';
import { MESSAGES, reject, type Decision, type Hold, type RejectReason } from './decision.js';
import { isLocked, whereFrom } from './lockout.js';
import { canonicalUsername } from './username.js';
import { startPush } from './push.js';

const NO_ATTRIBUTES = Buffer.alloc(0);

/** Whether a request without User-Password is one to relay (MS-CHAP, CHAP, EAP). */
export function isRelayed(packet: RadiusPacket): boolean {
  return nonPapKindOf(packet) !== undefined;
}

/**
 * Log lines, beside the audit line, for the decisions an admin has to act on. A Map: it is read with the
 * reason of every decision, and an object read with that many different keys goes megamorphic (V8).
 */
export const RELAY_HINTS: ReadonlyMap<string, string> = new Map(Object.entries({
  non_pap_unsupported: 'MS-CHAP/CHAP/EAP request refused: the local, ldap and none first factors need a cleartext (PAP) password; for MS-CHAPv2 and EAP use first_factor type radius with an upstream RADIUS server (NPS, FreeRADIUS)',
  non_pap_needs_code: "MS-CHAP/EAP request of a user whose method is totp or challenge: no code can be typed, and mfa.non_pap is reject; set the user's method to push, or mfa.non_pap: push",
  non_pap_push_fallback: 'MS-CHAP/EAP request of a user whose method is totp or challenge: approved by push instead (mfa.non_pap: push)',
  non_pap_needs_prompt: 'MS-CHAP/EAP request refused: push here needs a second prompt (number matching, or a nas_timeout shorter than mfa.push.timeout), which MS-CHAP and EAP cannot show; set number_matching: false for this client and raise its RADIUS timeout',
  anonymous_identity: 'EAP request refused: the outer identity is anonymous and the upstream Accept names no User-Name; make the upstream return the inner identity (FreeRADIUS: copy it to the outer reply; NPS does by default)',
}));

/** RFC 7542 §2.4 style anonymous outer identities: "", "anonymous", "@realm", "anonymous@realm". */
export function isAnonymous(name: string): boolean {
  return /^(anonymous)?(@.*)?$/i.test(name);
}

/** Decides one relayed request: one upstream round, or the second factor after the upstream's Accept. */
export async function relayAccess(attempt: AccessAttempt, outerName: string, deps: AccessDeps): Promise<Decision | Hold> {
  const nas = attempt.nas!;
  const kind = nonPapKindOf(nas.packet)!;
  const refuse = (method: Method | undefined, reason: RejectReason, message: string, delay = true, eapId?: number): Decision => ({
    ...reject(method, reason, message, delay),
    reply: refusalAttributes(nas.packet, eapId),
  });
  if (!deps.firstFactor.relay) return refuse(undefined, 'non_pap_unsupported', MESSAGES.nonPapUnsupported, false);

  const r: RelayResult = await deps.firstFactor.relay(nas, { q: attempt.q });
  switch (r.kind) {
    case 'unavailable':
      return refuse(undefined, 'first_factor_unavailable', MESSAGES.unavailable, false);
    case 'reject':
      // The upstream's own refusal (its EAP-Failure, MS-CHAP-Error) goes to the NAS as it is.
      return { ...reject(undefined, 'bad_password', MESSAGES.generic), reply: r.reply };
    case 'challenge':
      return { kind: 'challenge', method: undefined, reason: 'upstream_round', state: NO_ATTRIBUTES, message: '', reply: r.reply };
  }

  const eapId = kind === 'eap' ? findInAttributes(r.reply, Attr.EapMessage)?.[1] : undefined;
  // Whose phone: the inner identity the upstream names, else the outer one unless it is anonymous.
  // An upstream that echoes the outer identity ("anonymous@realm") names nobody either.
  const inner = r.userName !== undefined && !isAnonymous(r.userName) ? r.userName : undefined;
  if (inner === undefined && kind === 'eap' && isAnonymous(outerName)) return refuse(undefined, 'anonymous_identity', MESSAGES.anonymousIdentity, true, eapId);
  // One canonical name, as at every other door (flow/username.ts).
  const username = canonicalUsername(inner ?? outerName, deps.usernames);
  if (!username) return refuse(undefined, 'no_username', MESSAGES.generic, true, eapId);
  // The audit line names whose second factor this is (the inner identity); `login` keeps the outer one.
  attempt.identity = username;
  const where = (attempt.where = await whereFrom(username, attempt.callingStation ?? attempt.nasIp ?? `client:${attempt.clientName}`, deps));
  const user = await deps.store.getUser(username);
  if (isLocked(user, attempt.receivedAt, where)) return refuse(undefined, 'locked', MESSAGES.locked, true, eapId);
  const profile = deps.policy.profileOf(username, user);
  const reply = profile.reply.length ? Buffer.concat([r.reply, profile.reply]) : r.reply;
  let method = profile.method;
  let fallback = false;
  switch (method) {
    case 'deny':
      return refuse(method, 'method_deny', MESSAGES.deny, false, eapId);
    case 'none':
      return { kind: 'accept', method, reason: 'method_none', reply };
    case 'totp':
    case 'challenge':
      if (deps.config.mfa.non_pap === 'reject') return refuse(method, 'non_pap_needs_code', MESSAGES.nonPapNeedsCode, true, eapId);
      fallback = true;
      method = 'push';
      break;
    case 'push':
    case 'auto':
      break;
  }
  const a: UserAttempt = Object.assign(attempt, { identity: username, where, user, method });
  return pushAfterAccept(a, reply, deps, { fallback, refuse, eapId });
}

type Refuse = (method: Method | undefined, reason: RejectReason, message: string, delay?: boolean, eapId?: number) => Decision;

/** The push, held: an MS-CHAP or EAP peer cannot answer a second prompt, so a push that would need one is refused first. */
async function pushAfterAccept(a: UserAttempt, reply: Buffer, deps: AccessDeps, { fallback, refuse, eapId }: { fallback: boolean; refuse: Refuse; eapId: number | undefined }): Promise<Decision | Hold> {
  const { method } = a;
  const client = deps.policy.client(a.clientName);
  const settings = deps.config.mfa.push;
  if ((client.numberMatching ?? settings.number_matching) || settings.timeout > client.holdBudgetMs) {
    return refuse(method, 'non_pap_needs_prompt', MESSAGES.nonPapNeedsPrompt, false, eapId);
  }
  // No phone and no_device: totp asks startPush for a code prompt: impossible here.
  const noPrompt = async () => refuse(method, 'no_device', MESSAGES.noDevice, true, eapId);
  // Made now: a request held for the phone keeps no packet (app.ts lets go of attempt.nas).
  const refusal = refusalAttributes(a.nas!.packet, eapId);
  const result = await startPush(a, { reply, carried: undefined }, deps, noPrompt);
  const finish = (d: Decision): Decision => {
    if (d.kind === 'reject') return d.reply ? d : { ...d, reply: refusal };
    if (d.kind === 'accept' && fallback && d.reason === 'push_approved') return { ...d, reason: 'non_pap_push_fallback' };
    if (d.kind === 'challenge') return refuse(method, 'non_pap_needs_prompt', MESSAGES.nonPapNeedsPrompt, false, eapId);
    return d;
  };
  if (result.kind === 'hold') return { kind: 'hold', pushId: result.pushId, settle: (outcome) => finish(result.settle(outcome)) };
  return finish(result);
}
