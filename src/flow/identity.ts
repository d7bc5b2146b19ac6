// Who is signing in: the canonical form of the typed name (flow/username.ts) and, when the directory is
// set to tell (first_factor.search.username_attribute), its own name for that person, so that every
// alias (mail, userPrincipalName) is one user: one store row, one set of counters, one lock.
import type { FirstFactor } from '../auth/first-factor.js';
import { then, type Awaitable } from '../shared/awaitable.js';
import { canonicalUsername, type UsernameRules } from './username.js';

export type Identity =
  /** username: who it is; loginName: the canonical typed name, which the directory finds the entry by. */
  | { kind: 'known'; username: string; loginName: string }
  | { kind: 'no_username' }
  | { kind: 'unavailable'; reason: string };

/** At once unless the directory is asked (first_factor.search.username_attribute). */
export function identify(typed: string | undefined, firstFactor: FirstFactor, rules: UsernameRules, q?: number): Awaitable<Identity> {
  const loginName = typed === undefined ? undefined : canonicalUsername(typed, rules);
  if (!loginName) return { kind: 'no_username' };
  if (!firstFactor.directoryName) return { kind: 'known', username: loginName, loginName };
  return then(firstFactor.directoryName(loginName, { q }), (r): Identity => {
    if (r.kind === 'unavailable') return r;
    // Not in the directory: the name stays as typed, and the password check will fail for it.
    const username = r.kind === 'found' ? canonicalUsername(r.name, rules) : undefined;
    return { kind: 'known', username: username ?? loginName, loginName };
  });
}
