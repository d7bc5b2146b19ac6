// What the HTTP side (Mobile App API and portal) shares: one home, so neither plugin imports the other.
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { AccessDeps } from '../flow/attempt.js';
import type { PendingPushes } from '../mfa/pending.js';
import type { EphemeralState } from '../state/state.js';
import type { Store } from '../store/store.js';

export interface HttpDeps {
  /** Read per request, so a reload takes effect at once. */
  config: () => Config;
  store: Store;
  state: EphemeralState;
  pending: PendingPushes;
  /** The RADIUS decision path (policy, first factor, lockout): the portal signs users in through it. */
  access: () => AccessDeps;
  logger: Logger;
  now: () => number;
}
