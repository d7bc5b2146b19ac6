// The TOTP check shared by RADIUS and the portal: window, one use per time step, failures toward lockout.
import { verifyTotp } from '../mfa/totp.js';
import type { UserRecord } from '../store/store.js';
import type { AttemptSlot, LockoutDeps } from './lockout.js';

export type CodeCheck = { ok: true } | { ok: false; reason: 'not_enrolled' | 'bad_code' | 'replay'; locked: boolean };

/** Checks a code inside the caller's attempt slot (see takeAttemptSlot), and ends the slot. */
export async function checkUserCode(username: string, user: UserRecord | undefined, code: string, now: number, deps: LockoutDeps, slot: AttemptSlot): Promise<CodeCheck> {
  const totp = user?.totp;
  if (!totp) {
    await slot.release();
    return { ok: false, reason: 'not_enrolled', locked: false };
  }
  const window = deps.config.mfa.totp.window;
  const step = verifyTotp(totp, code, now, window);
  // RFC 6238 §5.2: a code is good once. The claim lasts as long as the step can still be offered.
  const reason = step === undefined ? 'bad_code' : (await deps.state.claimTotpStep(username, step, (2 * window + 2) * totp.period * 1000)) ? undefined : 'replay';
  // The password was right (here or in the request that led to this code): a wrong code counts more.
  if (reason) return { ok: false, reason, locked: await slot.fail(reason, { afterRightPassword: true }) };
  await slot.succeed();
  return { ok: true };
}
