// The push-approval PIN, checked the same way at every door (the phone's answer, an activation, the
// portal's PIN change): inside an attempt slot, so parallel guesses cannot outrun the lockout.
import { verifyPassword } from '../auth/password-hash.js';
import { takeAttemptSlot, type LockoutDeps, type Where } from './lockout.js';

export type PinCheck = { ok: true } | { ok: false; locked: boolean };

/** `where`: the phone (source "phone"), an activation, or the portal's browser. */
export async function checkPin(username: string, pinHash: string, pin: string, where: Where, now: number, deps: LockoutDeps): Promise<PinCheck> {
  const slot = await takeAttemptSlot(username, where, now, deps);
  if (!slot) return { ok: false, locked: true };
  const good = await verifyPassword(pinHash, pin).catch(async (err: unknown) => {
    await slot.release();
    throw err;
  });
  // A right PIN is not a sign-in on its own: the slot is given back, earlier failures stay.
  if (good) {
    await slot.release();
    return { ok: true };
  }
  return { ok: false, locked: await slot.fail('wrong_pin') };
}
