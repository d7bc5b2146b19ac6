// A new TOTP enrollment, the same at every door (portal, Mobile App API, CLI): a fresh secret with the
// configured parameters, which counts only once a code made from it is typed back. A secret that never
// reached an authenticator never replaces one that works, and an existing secret is never handed out.
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { verifyTotp } from '../mfa/totp.js';
import type { EphemeralState } from '../state/state.js';
import { StoreError, type Store, type TotpEnrollment } from '../store/store.js';

/** RFC 4226 §4 asks for at least 128 bits; 160 bits is what HMAC-SHA1 uses in full. */
const SECRET_BYTES = 20;

export function newTotpEnrollment(settings: Config['mfa']['totp']): TotpEnrollment {
  return { secret: randomBytes(SECRET_BYTES), algorithm: settings.algorithm, digits: settings.digits, period: settings.period };
}

export interface EnrollmentDeps {
  config: Config;
  state: EphemeralState;
  store: Store;
}

/**
 * Stores `enrollment` for the user when `code` is a current code of it; false otherwise. The code's
 * step is claimed as RADIUS would, so the code that confirmed the enrollment cannot also open the VPN.
 */
export async function confirmEnrollment(username: string, enrollment: TotpEnrollment, code: string, now: number, deps: EnrollmentDeps): Promise<{ ok: true; replaced: boolean } | { ok: false }> {
  const window = deps.config.mfa.totp.window;
  const step = verifyTotp(enrollment, code.replace(/\s/g, ''), now, window);
  if (step === undefined) return { ok: false };
  await deps.state.claimTotpStep(username, step, (2 * window + 2) * enrollment.period * 1000);
  const user = await deps.store.getUser(username);
  if (!user) await ensureUser(deps.store, username);
  await deps.store.setTotp(username, enrollment);
  return { ok: true, replaced: user?.totp != null };
}

/** Users known only to the directory get a store row on their first enrollment; two at once make one. */
export async function ensureUser(store: Store, username: string): Promise<void> {
  if (await store.getUser(username)) return;
  await store.addUser({ username }).catch((err: unknown) => {
    if (!(err instanceof StoreError && err.code === 'USER_EXISTS')) throw err;
  });
}
