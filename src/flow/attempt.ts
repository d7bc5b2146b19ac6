// The types one Access-Request carries through flow/: the attempt, what deciding it needs, and the
// first-factor state a challenge keeps. Their own module so access.ts and push.ts share them without a cycle.
import type { Config, Method } from '../config/schema.js';
import type { FirstFactor, NasRequest } from '../auth/first-factor.js';
import type { ChallengeRecord } from '../state/state.js';
import type { UserRecord } from '../store/store.js';
import type { Decision } from './decision.js';
import type { Where } from './lockout.js';
import type { Policy } from './policy.js';
import type { RateLimiter } from './rate-limit.js';
import type { SecondFactorDeps } from './second-factor.js';
import type { UsernameRules } from './username.js';

export interface AccessAttempt {
  q: number;
  clientName: string;
  username: string | undefined;
  /** Who it is (see flow/identity.ts), set once known: the audit line's `user`. */
  identity?: string;
  /** Where it comes from, and whether the user signed in from there before (flow/lockout.ts), set with identity. */
  where?: Where;
  /** The store's record and the method that applies, set with identity (UserAttempt). */
  user?: UserRecord | undefined;
  method?: Method;
  /** What the user typed in the password field; undefined for non-PAP requests. */
  password: string | undefined;
  state: Buffer | undefined;
  nasIp: string | undefined;
  nasIdentifier: string | undefined;
  callingStation: string | undefined;
  /** RFC 2865 §5.5: the NAS's port for this session; re-sent requests of one attempt carry the same. */
  nasPort: number | undefined;
  receivedAt: number;
  /** Monotonic reception time, for ordering only (see PendingPushes.join). */
  arrival: number;
  /** The NAS's request: its attributes go upstream; MS-CHAP / EAP are relayed (relay.ts). */
  nas?: NasRequest;
}

/**
 * The attempt once its user is known, passed along as one object (as radiusd's struct radius_query):
 * who (identity), from where, the store's record and the method that applies.
 */
export interface UserAttempt extends AccessAttempt {
  identity: string;
  where: Where;
  user: UserRecord | undefined;
  method: Method;
}

/** What the first factor left for the second: the reply attributes, and what a challenge must carry. */
export interface Passed {
  reply: Buffer;
  carried: FirstFactorCarry;
}

/** settings, store, state, pending, pushSender, onLock: the second factor's (flow/second-factor.ts). */
export interface AccessDeps extends SecondFactorDeps {
  config: Config;
  policy: Policy;
  firstFactor: FirstFactor;
  /** The portal's password check: portal.first_factor, else the first factor itself. */
  portalFirstFactor: FirstFactor;
  usernames: UsernameRules;
  /** This node's request rates (rate_limits): kept across reloads. */
  rates: RateLimiter;
  now: () => number;
}

/** What a challenge remembers of the first factor (directory groups, upstream reply) for the answer's Accept. */
export type FirstFactorCarry = ChallengeRecord['firstFactor'];

/** Access-Challenge asking for the TOTP code: access.ts owns it, push.ts falls back to it. */
export type AskForCode = (attempt: UserAttempt, deps: AccessDeps, carried: FirstFactorCarry) => Promise<Decision>;
