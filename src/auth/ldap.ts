// LDAP / Active Directory first factor: the password is checked by a bind as the user (ldapts).
// One connection per check; several URLs are tried in order when a server cannot be reached.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { Client, Entry } from 'ldapts';
import type { Logger } from 'pino';
import { lazy } from '../shared/lazy.js';
import type { LdapFirstFactorConfig } from '../config/schema.js';
import type { DirectoryNameResult, FirstFactor, FirstFactorContext, FirstFactorResult, GroupsResult } from './first-factor.js';

/** RFC 4515 §3: `*`, `(`, `)`, `\` and NUL are written as a backslash and two hex digits (and non-ASCII as UTF-8 octets). */
export function escapeFilterValue(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte === 0x2a || byte === 0x28 || byte === 0x29 || byte === 0x5c || byte === 0x00 || byte >= 0x80
      ? `\\${byte.toString(16).padStart(2, '0')}`
      : String.fromCharCode(byte);
  }
  return out;
}

/** RFC 4514 §2.4: escapes an attribute value for use inside a DN. */
export function escapeDnValue(value: string): string {
  let out = value.replace(/[\\",+;<>=]/g, (c) => `\\${c}`).replace(/\0/g, '\\00');
  if (/^[ #]/.test(out)) out = `\\${out}`;
  if (out.endsWith(' ')) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/** Which of our errors mean "this server is unreachable or broken" rather than "wrong password". */
class LdapUnavailable extends Error {}

// Loaded by the first LDAP check, not at start: app.ts imports this module whatever first_factor is (start-up time).
const ldapts = lazy(() => import('ldapts'));

type UserLookup = { kind: 'found'; dn: string; entry: Entry } | { kind: 'not_found' };

interface Session {
  client: Client;
  url: string;
}

export function ldapFirstFactor(config: LdapFirstFactorConfig, logger: Logger): FirstFactor {
  const urls = [...(config.url ?? []), ...(config.urls ?? [])];
  const ca = config.ca_file ? readFileSync(config.ca_file) : undefined;
  const tlsOptions: ConnectionOptions = { ...(ca ? { ca } : {}), minVersion: 'TLSv1.2' };
  const groupAttr = config.groups.attribute;
  const log = logger.child({ first_factor: 'ldap' });
  // The config refuses this unless allow_insecure says it is meant; say so at every start, where admins look.
  const plain = config.start_tls ? [] : urls.filter((u) => /^ldap:/i.test(u));
  if (plain.length > 0) {
    log.warn({ ldap: plain }, `LDAP without TLS (first_factor.allow_insecure: true): passwords go to ${plain.join(', ')} in clear; use ldaps:// or start_tls: true`);
  }

  /** Runs `work` on the first server that can be reached and (for StartTLS) upgraded; unavailable when none can. */
  async function withServer<T>(q: number | undefined, work: (s: Session) => Promise<T>): Promise<T | { kind: 'unavailable'; reason: string }> {
    const { Client, InvalidCredentialsError } = await ldapts();
    const failures: string[] = [];
    for (const url of urls) {
      // Fresh option objects each time: ldapts' startTLS writes the socket into the object it is given.
      // Client-level tlsOptions only for ldaps://: given for ldap:// they break ldapts' StartTLS handshake.
      const secure = /^ldaps:/i.test(url);
      const client = new Client({ url, timeout: config.timeout, connectTimeout: config.timeout, ...(secure ? { tlsOptions: { ...tlsOptions } } : {}), strictDN: false });
      try {
        if (config.start_tls) {
          try {
            await client.startTLS({ ...tlsOptions });
          } catch (err) {
            throw new LdapUnavailable(`StartTLS failed: ${describe(err)}`);
          }
        }
        return await work({ client, url });
      } catch (err) {
        if (err instanceof InvalidCredentialsError) throw err;
        const reason = `${url}: ${describe(err)}`;
        failures.push(reason);
        log.warn({ q, ldap: url, reason: describe(err) }, `LDAP server ${url} cannot be used: ${describe(err)}`);
      } finally {
        await client.unbind().catch(() => {});
      }
    }
    const reason = `no LDAP server could be used (${failures.join('; ')})`;
    log.error({ q, reason }, reason);
    return { kind: 'unavailable', reason };
  }

  async function findUser(s: Session, username: string): Promise<UserLookup> {
    const search = config.search!;
    try {
      await s.client.bind(search.bind_dn, search.password);
    } catch (err) {
      // The service account's password is config, not the user's: this is an outage, not a reject.
      throw new LdapUnavailable(`service bind as ${search.bind_dn} failed: ${describe(err)}`);
    }
    const filter = search.filter.replaceAll('{user}', escapeFilterValue(username));
    const attributes = ['dn', groupAttr, ...(search.username_attribute ? [search.username_attribute] : [])];
    const { searchEntries } = await s.client.search(search.base, { scope: search.scope, filter, sizeLimit: 2, attributes });
    if (searchEntries.length !== 1) return { kind: 'not_found' };
    return { kind: 'found', dn: searchEntries[0]!.dn, entry: searchEntries[0]! };
  }

  async function groupsFor(s: Session, username: string, dn: string, entry: Entry | undefined): Promise<string[]> {
    const nameAttr = config.groups.name_attribute;
    const gs = config.groups.search;
    if (gs) {
      const filter = gs.filter.replaceAll('{dn}', escapeFilterValue(dn)).replaceAll('{user}', escapeFilterValue(username));
      const { searchEntries } = await s.client.search(gs.base, { scope: 'sub', filter, attributes: [nameAttr] });
      return searchEntries.flatMap((e) => values(e[nameAttr]));
    }
    const source = entry ?? (await s.client.search(dn, { scope: 'base', attributes: [groupAttr] })).searchEntries[0];
    const key = source && Object.keys(source).find((k) => k.toLowerCase() === groupAttr.toLowerCase());
    return key ? values(source[key]).map((g) => rdnValue(g, nameAttr)) : [];
  }

  const nameAttr = config.search?.username_attribute;

  return {
    type: 'ldap',

    ...(nameAttr
      ? {
          async directoryName(username: string, context?: FirstFactorContext): Promise<DirectoryNameResult> {
            return withServer(context?.q, async (s): Promise<DirectoryNameResult> => {
              const found = await findUser(s, username);
              if (found.kind === 'not_found') return found;
              const key = Object.keys(found.entry).find((k) => k.toLowerCase() === nameAttr.toLowerCase());
              const name = key ? values(found.entry[key])[0] : undefined;
              if (!name) return { kind: 'unavailable', reason: `the entry ${found.dn} has no ${nameAttr} (first_factor.search.username_attribute)` };
              return { kind: 'found', name };
            });
          },
        }
      : {}),

    async groupsOf(username, context): Promise<GroupsResult> {
      // Only a service account can read groups before the user's own bind.
      if (!config.search || !username) return { kind: 'ok', groups: [] };
      const r = await withServer(context?.q, async (s) => {
        const found = await findUser(s, username);
        return { kind: 'ok' as const, groups: found.kind === 'found' ? await groupsFor(s, username, found.dn, found.entry) : [] };
      });
      return r;
    },

    async check(name, password, _user, context): Promise<FirstFactorResult> {
      // The entry is found by the name logged in with (an alias, maybe), not the directory's own name for it.
      const username = context?.loginName ?? name;
      // An empty password would be an anonymous bind (RFC 4513 §5.1.2) that "succeeds": refuse before any bind.
      if (password.length === 0) return { kind: 'reject', reason: 'no_password' };
      if (username.length === 0) return { kind: 'reject', reason: 'unknown_user' };
      try {
        return await withServer<FirstFactorResult>(context?.q, async (s) => {
          let dn: string;
          let entry: Entry | undefined;
          if (config.search) {
            const found = await findUser(s, username);
            if (found.kind === 'not_found') return { kind: 'reject', reason: 'unknown_user' };
            ({ dn, entry } = found);
          } else {
            dn = config.bind_dn_template!.replaceAll('{user}', escapeDnValue(username));
          }
          await s.client.bind(dn, password); // InvalidCredentialsError -> bad password
          const groups = await groupsFor(s, username, dn, config.search ? entry : undefined).catch((err: unknown) => {
            log.warn({ q: context?.q, reason: describe(err) }, 'LDAP group lookup failed after a good bind: no directory groups applied');
            return [] as string[];
          });
          return { kind: 'accept', groups };
        });
      } catch (err) {
        if (err instanceof (await ldapts()).InvalidCredentialsError) {
          // Template binds cannot tell an unknown DN from a bad password (AD answers 49 for both).
          return { kind: 'reject', reason: 'bad_password' };
        }
        throw err;
      }
    },
  };
}

function values(v: Entry[string] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : x));
}

/** "cn=VPN Users,ou=groups,dc=example,dc=com" -> "VPN Users" (the first RDN's value when its type is `nameAttr`). */
function rdnValue(dn: string, nameAttr: string): string {
  const m = /^\s*([^=]+)=((?:\\.|[^,\\])*)/.exec(dn);
  if (!m || m[1]!.trim().toLowerCase() !== nameAttr.toLowerCase()) return dn;
  return m[2]!.replace(/\\([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))).replace(/\\(.)/g, '$1').trim();
}

function describe(err: unknown): string {
  if (err instanceof LdapUnavailable) return err.message;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return code !== undefined && !err.message.includes(String(code)) ? `${err.message} (${String(code)})` : err.message;
  }
  return String(err);
}
