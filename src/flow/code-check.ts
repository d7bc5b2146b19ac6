// The TOTP check shared by RADIUS and the portal: window, one use per time step, failures toward lockout.
import { verifyTotp } from '../mfa/totp.js';
import type { UserRecord } from '../store/store.js';
import { clearFailures, recordFailure, type LockoutDeps } from './lockout.js';

export type CodeCheck = { ok: true } | { ok: false; reason: 'not_enrolled' | 'bad_code' | 'replay'; locked: boolean };

export async function checkUserCode(username: string, user: UserRecord | undefined, code: string, now: number, deps: LockoutDeps): Promise<CodeCheck> {
  const totp = user?.totp;
  if (!totp) return { ok: false, reason: 'not_enrolled', locked: false };
  const window = deps.config.mfa.totp.window;
  const step = verifyTotp(totp, code, now, window);
  // RFC 6238 §5.2: a code is good once. The claim lasts as long as the step can still be offered.
  const reason = step === undefined ? 'bad_code' : (await deps.state.claimTotpStep(username, step, (2 * window + 2) * totp.period * 1000)) ? undefined : 'replay';
  if (reason) return { ok: false, reason, locked: await recordFailure(username, reason, now, deps) };
  await clearFailures(username, deps);
  return { ok: true };
}
