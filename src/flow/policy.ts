// The policy view of the config: which method and which reply attributes apply to a user.
// Built once per config load (reply attributes are encoded here, not per request).
import { holdBudgetMs, type Config, type Method } from '../config/schema.js';
import { encodeNamedAttributes, type NamedAttributes } from '../radius/dictionary.js';
import type { UserRecord } from '../store/store.js';
import { canonicalUsername, NO_REALMS, type UsernameRules } from './username.js';

export type MethodSource = 'user' | 'config_user' | 'group' | 'default';

export interface Profile {
  method: Method;
  source: MethodSource;
  /** Encoded reply attributes for Access-Accept: groups in config order, then the config user entry. */
  reply: Buffer;
}

/** What the push flow needs to know of a RADIUS client. */
export interface ClientPolicy {
  numberMatching: boolean | undefined;
  /** How long the NAS waits in all (nas_timeout x tries) less a safety margin; Infinity when not declared. */
  holdBudgetMs: number;
}

interface Rule {
  method: Method | undefined;
  reply: Buffer;
}

export class Policy {
  private readonly groupsOf = new Map<string, Rule[]>();
  private readonly groupsByName = new Map<string, Rule>();
  private readonly configUsers = new Map<string, Rule>();
  private readonly clients = new Map<string, ClientPolicy>();
  /** Some group sets a method: directory groups must then be known before the password is split. */
  readonly groupsChooseMethod: boolean;

  /** Config names (`users:`, group members) are made canonical here, as every username is at its door. */
  constructor(
    private readonly config: Config,
    usernames: UsernameRules = NO_REALMS,
  ) {
    const canonical = (name: string) => canonicalUsername(name, usernames) ?? name;
    this.groupsChooseMethod = Object.values(config.groups).some((g) => g.method !== undefined);
    for (const c of config.clients) {
      this.clients.set(c.name, { numberMatching: c.number_matching, holdBudgetMs: holdBudgetMs(c.nas_timeout, c.nas_retries) });
    }
    for (const [name, group] of Object.entries(config.groups)) {
      const rule = { method: group.method, reply: encodeOrThrow(group.reply, `groups.${name}.reply`) };
      this.groupsByName.set(name, rule);
      for (const member of new Set(group.members.map(canonical))) {
        const list = this.groupsOf.get(member) ?? [];
        list.push(rule);
        this.groupsOf.set(member, list);
      }
    }
    for (const [name, user] of Object.entries(config.users)) {
      this.configUsers.set(canonical(name), { method: user.method, reply: encodeOrThrow(user.reply, `users.${name}.reply`) });
    }
  }

  client(name: string): ClientPolicy {
    return this.clients.get(name) ?? { numberMatching: undefined, holdBudgetMs: Infinity };
  }

  get defaultMethod(): Method {
    return this.config.mfa.default_method;
  }

  /** Method precedence: the user's own (CLI) > config `users:` > first group in config order > default. */
  profileOf(username: string, user: UserRecord | undefined, directoryGroups: readonly string[] = NO_NAMES): Profile {
    const rules = this.rulesOf(username, directoryGroups);
    const configUser = this.configUsers.get(username);
    let method: Method = this.config.mfa.default_method;
    let source: MethodSource = 'default';
    if (user?.method) {
      method = user.method;
      source = 'user';
    } else if (configUser?.method) {
      method = configUser.method;
      source = 'config_user';
    } else {
      const group = firstMethod(rules);
      if (group) {
        method = group;
        source = 'group';
      }
    }
    return { method, source, reply: replyOf(rules, configUser) };
  }

  private rulesOf(username: string, directoryGroups: readonly string[]): readonly Rule[] {
    const fromConfig = this.groupsOf.get(username) ?? NO_RULES;
    if (directoryGroups.length === 0) return fromConfig;
    const extra = directoryGroups.map((g) => this.groupsByName.get(g)).filter((r): r is Rule => r !== undefined && !fromConfig.includes(r));
    return [...fromConfig, ...extra];
  }
}

// Runs twice for every request: nothing is allocated for a user in no group and no `users:` entry.
const NO_NAMES: readonly string[] = Object.freeze([]);
const NO_RULES: readonly Rule[] = Object.freeze([]);

/** The method of the first group in config order that sets one. */
function firstMethod(rules: readonly Rule[]): Method | undefined {
  for (const r of rules) if (r.method !== undefined) return r.method;
  return undefined;
}

/** Reply attributes: the groups' in config order, then the config user's. */
function replyOf(rules: readonly Rule[], configUser: Rule | undefined): Buffer {
  const parts = configUser ? [...rules, configUser] : rules;
  // No reply attributes (the usual case) is one shared empty Buffer: Buffer.concat([]) makes a Buffer and an
  // ArrayBuffer each time, and a held push keeps them for its whole wait.
  return parts.length === 0 ? NO_REPLY : parts.length === 1 ? parts[0]!.reply : Buffer.concat(parts.map((r) => r.reply));
}

const NO_REPLY = Buffer.alloc(0);

/** Config validation has already checked every attribute; a failure here is a bug. */
function encodeOrThrow(attributes: NamedAttributes, where: string): Buffer {
  const r = encodeNamedAttributes(attributes);
  if (!r.ok) throw new Error(`${where}: ${r.errors.map((e) => e.message).join('; ')}`);
  return r.bytes;
}
