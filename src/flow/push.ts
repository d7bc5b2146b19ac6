// Push approval at RADIUS, over the second-factor service: one push per attempt; the request is held
// until the phone answers, or, for number matching and for NAS whose timeout is too short to hold,
// answered with an Access-Challenge whose State leads back to the same push.
import type { PendingPush, PushOutcome } from '../mfa/pending.js';
import type { ChallengeRecord } from '../state/state.js';
import type { AccessDeps, AskForCode, FirstFactorCarry, Passed, UserAttempt } from './attempt.js';
import { newChallenge } from './challenge.js';
import { signedIn } from './lockout.js';
import { MESSAGES, pushRefusalText, reject, type Decision, type Hold } from './decision.js';
import { openPush, pushVerdict, settlePush, type PushVerdict } from './second-factor.js';

/** After the first factor: push (or join this attempt's push), then hold (see Hold) or challenge. */
export async function startPush(a: UserAttempt, passed: Passed, deps: AccessDeps, askForCode: AskForCode): Promise<Decision | Hold> {
  const { method } = a;
  const settings = deps.config.mfa;
  const client = deps.policy.client(a.clientName);
  const opened = await openPush(
    {
      username: a.identity,
      user: a.user,
      clientName: a.clientName,
      nasIp: a.nasIp,
      nasIdentifier: a.nasIdentifier,
      callingStation: a.callingStation,
      nasPort: a.nasPort,
      numberMatching: client.numberMatching ?? settings.push.number_matching,
      arrival: a.arrival,
    },
    deps,
  );
  if (!opened.ok) {
    switch (opened.reason) {
      case 'no_device':
        if (settings.push.no_device === 'totp' && a.user?.totp) return askForCode(a, deps, passed.carried);
        return reject(method, 'no_device', MESSAGES.noDevice);
      case 'push_rate_limited':
        return reject(method, 'push_rate_limited', MESSAGES.rateLimited);
      case 'push_token_stale':
        return reject(method, 'push_token_stale', MESSAGES.tokenStale);
      case 'push_unavailable':
        if (settings.failmode === 'safe') return { kind: 'accept', method, reason: 'failmode_safe', reply: passed.reply };
        return reject(method, 'push_unavailable', MESSAGES.pushUnavailable, false);
    }
  }
  const push = opened.push;
  if (push.number !== undefined || settings.push.timeout > client.holdBudgetMs) {
    return pushChallenge(a, push, push.number !== undefined ? 'number_requested' : 'approve_then_enter', deps, passed.carried);
  }
  return new HeldPush(push.id, a, passed.reply, deps);
}

/**
 * A request held for the phone: one object keeping only what settling needs (not startPush's scope, and
 * not a closure and its context beside it): 10,000 held requests keep 10,000 of these. An approval is a
 * sign-in, which makes its source familiar (flow/lockout.ts) as decideAccess does for requests answered at once.
 */
class HeldPush implements Hold {
  readonly kind = 'hold';

  constructor(
    readonly pushId: string,
    private readonly a: UserAttempt,
    private readonly reply: Buffer,
    private readonly deps: AccessDeps,
  ) {}

  settle(outcome: PushOutcome | undefined): Decision {
    const decision = fromVerdict(pushVerdict(outcome), this.a, this.reply);
    // Not awaited (settle is synchronous); a mark that cannot be written only costs the source its place.
    if (decision.kind === 'accept') {
      const marking = signedIn(this.a.identity, this.a.where, this.deps);
      if (marking instanceof Promise) marking.catch(() => undefined);
    }
    return decision;
  }
}

/** The answer to a push challenge: wait (within what the NAS allows) for the phone, then check the number. */
export async function answerPushChallenge(a: UserAttempt, record: ChallengeRecord, typed: string, reply: Buffer, deps: AccessDeps): Promise<Decision> {
  const push = await deps.pending.get(record.pushId!);
  if (!push || push.username !== a.identity) return reject(a.method, 'bad_state', MESSAGES.badState);
  const holdLimit = deps.policy.client(a.clientName).holdBudgetMs;
  const outcome = push.outcome ?? (await deps.pending.wait(push.id, Math.min(holdLimit, push.expires - deps.now())));
  if (!outcome) return pushChallenge(a, push, 'push_pending', deps, record.firstFactor);
  const settled = await settlePush({ push, typedNumber: typed, where: a.where }, a.receivedAt, deps);
  if (settled.ok) return fromVerdict(settled, a, reply);
  if (settled.reason === 'claimed_elsewhere') return reject(a.method, 'bad_state', MESSAGES.badState);
  if (settled.reason === 'number_mismatch') return reject(a.method, 'number_mismatch', settled.locked ? MESSAGES.locked : MESSAGES.numberMismatch);
  return fromVerdict(settled, a, reply);
}

async function pushChallenge(a: UserAttempt, push: PendingPush, reason: 'number_requested' | 'approve_then_enter' | 'push_pending', deps: AccessDeps, carried: FirstFactorCarry): Promise<Decision> {
  const { method } = a;
  const record: ChallengeRecord = { username: a.identity, clientName: a.clientName, method, pushId: push.id, expires: push.expires, firstFactor: carried };
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

/** The phone's verdict as the NAS's answer. */
function fromVerdict(verdict: PushVerdict, a: UserAttempt, reply: Buffer): Decision {
  if (verdict.ok) return { kind: 'accept', method: a.method, reason: 'push_approved', reply };
  return reject(a.method, verdict.reason, pushRefusalText(verdict.reason));
}
