import { randomBytes } from 'node:crypto';
import type { ChallengeRecord, EphemeralState } from '../state/state.js';

/** 144 random bits: as unguessable as any State needs to be, and 24 characters once printed. */
const STATE_RANDOM_BYTES = 18;

/**
 * Stores a challenge under a new random State (RFC 2865 §5.24: opaque to the NAS; here single-use and expiring).
 * The State is printable ASCII (base64url), not raw bytes: ocserv (radcli) keeps State as a C string and sends
 * back only what precedes the first 0x00, which 6 % of 16 raw random bytes contain. The challenge is keyed by
 * the hex of the octets sent, so a State comes back to the same key whatever form it has.
 */
export async function newChallenge(state: EphemeralState, record: ChallengeRecord, random: (n: number) => Buffer = randomBytes): Promise<Buffer> {
  const token = Buffer.from(random(STATE_RANDOM_BYTES).toString('base64url'), 'ascii');
  await state.putChallenge(token.toString('hex'), record);
  return token;
}
