import { randomBytes } from 'node:crypto';
import type { ChallengeRecord, EphemeralState } from '../state/state.js';

/** Stores a challenge under a new random State (RFC 2865 §5.24: opaque to the NAS; here single-use and expiring). */
export async function newChallenge(state: EphemeralState, record: ChallengeRecord): Promise<Buffer> {
  const token = randomBytes(16);
  await state.putChallenge(token.toString('hex'), record);
  return token;
}
