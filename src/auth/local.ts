import { hashPassword, verifyPassword } from './password-hash.js';
import type { FirstFactor } from './first-factor.js';

/**
 * Local users with argon2id hashes (hashed on the libuv pool, off the event loop). An unknown user or one
 * without a password costs one hash check too, so timing does not tell which usernames exist.
 */
export function localFirstFactor(): FirstFactor {
  let decoy: Promise<string> | undefined;
  return {
    type: 'local',
    async check(_username, password, user) {
      if (!user?.passwordHash) {
        decoy ??= hashPassword('decoy password for timing');
        await verifyPassword(await decoy, password);
        return { kind: 'reject', reason: user ? 'no_password' : 'unknown_user' };
      }
      return (await verifyPassword(user.passwordHash, password)) ? { kind: 'accept' } : { kind: 'reject', reason: 'bad_password' };
    },
  };
}
