// One canonical username per person. Directories (LDAP/AD) and most upstream RADIUS servers match
// names case-insensitively, so `ALICE` and `alice` are the same person to the first factor: every
// lookup, counter, lock and policy rule must then treat them as one. Computed once at each door
// (RADIUS, portal, Mobile App API, CLI, config), never compared in any other form.

/** What the config says about names: realms stripped from `REALM\user` and `user@realm`. */
export interface UsernameRules {
  /** Lower-case realm names; a name in another realm is kept whole (a different person). */
  realms: readonly string[];
}

export const NO_REALMS: UsernameRules = { realms: [] };

/**
 * The canonical form: NFKC (as LDAP's RFC 4518 string preparation does, so full-width and other
 * compatibility forms of a letter match it), trimmed, lower-cased, a configured realm removed.
 * undefined when nothing is left.
 */
export function canonicalUsername(typed: string, rules: UsernameRules): string | undefined {
  let name = typed.normalize('NFKC').trim().toLowerCase();
  const slash = name.indexOf('\\');
  if (slash > 0 && rules.realms.includes(name.slice(0, slash))) name = name.slice(slash + 1).trim();
  const at = name.lastIndexOf('@');
  if (at > 0 && rules.realms.includes(name.slice(at + 1))) name = name.slice(0, at).trim();
  return name === '' ? undefined : name;
}

/** Rules from config: realm names are compared in canonical (lower-case, NFKC) form too. */
export function usernameRules(realms: readonly string[]): UsernameRules {
  return { realms: realms.map((r) => r.normalize('NFKC').trim().toLowerCase()) };
}
