import type { Logger } from 'pino';
import type { Store, UserRecord } from '../store/store.js';
import type { HashParams } from '../config/schema.js';
import { hashPassword, needsRehash, verifyPassword } from './password-hash.js';
import type { FirstFactor } from './first-factor.js';

/**
 * Local users with argon2id hashes (hashed on the libuv pool, off the event loop). A user without a
 * password costs no hash: boundedFirstFactor makes that refusal wait as long as a real check, on a
 * timer. A good password under an old hash is re-hashed with `params` after the answer, so changing
 * first_factor.password_hash needs no password reset.
 */
export function localFirstFactor(params: HashParams, store: Store, logger: Logger): FirstFactor {
  const cheapReject = (user: UserRecord | undefined) => (user?.passwordHash ? undefined : user ? 'no_password' : 'unknown_user');
  return {
    type: 'local',
    cheapReject,
    async check(username, password, user) {
      const refused = cheapReject(user);
      if (refused || !user?.passwordHash) return { kind: 'reject', reason: refused ?? 'no_password' };
      if (!(await verifyPassword(user.passwordHash, password))) return { kind: 'reject', reason: 'bad_password' };
      if (needsRehash(user.passwordHash, params)) {
        void hashPassword(password, params)
          .then((hash) => store.setPasswordHash(username, hash))
          .then(() => logger.info({ user: username, event: 'password_rehashed', ...params }, 'password re-hashed with first_factor.password_hash'))
          .catch((err: unknown) => logger.error({ user: username, err }, 're-hashing a password failed; the old hash stays and still works'));
      }
      return { kind: 'accept' };
    },
  };
}
