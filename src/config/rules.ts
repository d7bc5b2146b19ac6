// Rules across several keys, which a per-field schema cannot state. Checked at load (with the
// line and column of the key) and again when the app starts, so a config built in code obeys them too.
import { canonicalUsername, usernameRules } from '../flow/username.js';
import type { Config } from './schema.js';

export interface RuleIssue {
  path: (string | number)[];
  message: string;
}

export function crossFieldIssues(config: Config): RuleIssue[] {
  return [...httpTlsIssues(config), ...encryptionKeyIssues(config), ...portalFirstFactorIssues(config), ...usernameIssues(config)];
}

/** Device tokens, PINs and portal passwords cross http.listen: in clear only on this host, or behind a TLS proxy the admin names. */
function httpTlsIssues(config: Config): RuleIssue[] {
  const http = config.http;
  if (!http || http.tls || http.insecure || isLoopback(http.listen.host)) return [];
  return [
    {
      path: ['http', 'listen'],
      message: `${http.listen.host} is not a loopback address, so passwords and device tokens would cross the network in clear: set http.tls {cert, key}, or put a TLS reverse proxy in front and set http.insecure: true`,
    },
  ];
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** The same test as store/secret-box.ts parseHexKey, made at load so check-config names the line. */
function encryptionKeyIssues(config: Config): RuleIssue[] {
  const key = config.store.encryption_key;
  if (key === undefined || /^[0-9a-fA-F]{64}$/.test(key.trim())) return [];
  return [{ path: ['store', 'encryption_key'], message: 'must be 64 hex characters (32 bytes); generate one with: openssl rand -hex 32' }];
}

/** With first_factor none any password "passes": a portal behind it would sign anyone in as anyone. */
function portalFirstFactorIssues(config: Config): RuleIssue[] {
  if (!config.http || !config.portal.enabled || config.first_factor.type !== 'none' || config.portal.first_factor) return [];
  return [
    {
      path: ['portal'],
      message:
        'first_factor.type is none, so the portal has no password to check and would let anyone sign in as any user: set portal.first_factor (local, ldap or radius) or portal.enabled: false',
    },
  ];
}

/** Config names are people too: two spellings of one person would give two rules for one user. */
function usernameIssues(config: Config): RuleIssue[] {
  const rules = usernameRules(config.usernames.realms);
  const issues: RuleIssue[] = [];
  const seen = new Map<string, string>();
  for (const name of Object.keys(config.users)) {
    const canonical = canonicalUsername(name, rules);
    if (canonical === undefined) {
      issues.push({ path: ['users', name], message: 'is empty once trimmed' });
      continue;
    }
    const other = seen.get(canonical);
    if (other !== undefined) {
      issues.push({ path: ['users', name], message: `names the same user as ${JSON.stringify(other)} (usernames are compared case-insensitively, realm removed): keep one entry` });
    }
    seen.set(canonical, name);
  }
  return issues;
}
