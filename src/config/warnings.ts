// Settings that load but deserve a warning: each says what to change.
import { holdBudgetMs, type Config } from './schema.js';
import type { Segment } from './yaml-position.js';

/** Shorter shared secrets get a warning (RFC 2865 §3 asks for at least 16 octets, BlastRADIUS for random ones). */
const MIN_SECRET_LENGTH = 16;

/** `nodeFlags`: node's own options, NODE_OPTIONS's then its command line's (the last of a flag wins, as in node). */
export function configWarnings(config: Config, nodeFlags: readonly string[] = processNodeFlags()): { path: Segment[]; message: string }[] {
  const out: { path: Segment[]; message: string }[] = [];
  config.clients.forEach((client, i) => {
    const name = JSON.stringify(client.name);
    if (!client.require_message_authenticator) {
      out.push({
        path: ['clients', i, 'require_message_authenticator'],
        message: `client ${name} accepts Access-Requests without Message-Authenticator, which leaves it open to BlastRADIUS (CVE-2024-3596); set it to true once the appliance sends Message-Authenticator`,
      });
    }
    if (client.secret.length < MIN_SECRET_LENGTH) {
      out.push({
        path: ['clients', i, 'secret'],
        message: `client ${name} has a shared secret shorter than ${MIN_SECRET_LENGTH} characters; use a long random one, e.g. from: openssl rand -base64 24`,
      });
    }
    const budget = holdBudgetMs(client.nas_timeout, client.nas_retries);
    if (config.mfa.push.timeout > budget) {
      out.push({
        path: ['clients', i, 'nas_timeout'],
        message: `client ${name} gives up after ${(budget / 1000).toFixed(1)} s (nas_timeout x ${client.nas_retries + 1} tries, less 1 s), shorter than mfa.push.timeout ${config.mfa.push.timeout / 1000} s: push users of this client get the "approve on your phone, then press Enter" challenge instead of a held request; raise the appliance's RADIUS timeout to hold pushes`,
      });
    }
  });
  nonPapWarnings(config, (path, message) => out.push({ path, message }));
  if (config.store.type === 'postgres' && config.state.type === 'memory') {
    out.push({
      path: ['state', 'type'],
      message:
        'store.type is postgres (a store other nodes may share) but state.type is memory: each node keeps its own replay marks, lockout counts and challenges, so a code used at one node can be replayed at another and failures spread over nodes never lock; use state.type redis when more than one node serves (docs/ha.md)',
    });
  }
  const semiSpace = semiSpaceCapMiB(nodeFlags);
  if (config.state.type === 'redis' && semiSpace !== undefined && semiSpace <= SMALL_SEMI_SPACE_MIB) {
    out.push({
      path: ['state', 'type'],
      message: `state.type is redis but node runs with --max-semi-space-size=${semiSpace}, the one-node setting of deploy/radius-mfa.service and npm start: a request waiting for Redis and PostgreSQL is copied by every young-generation collection, and this costs such a node 4-12 % of its answers per second; remove Environment=NODE_OPTIONS=--max-semi-space-size=${semiSpace} from the unit (docs/ha.md)`,
    });
  }
  return out;
}

/** A young generation capped at this (MiB per semi-space) or less slows a node on shared engines (docs/ha.md). */
const SMALL_SEMI_SPACE_MIB = 4;

function processNodeFlags(): string[] {
  return [...(process.env.NODE_OPTIONS ?? '').split(/\s+/), ...process.execArgv];
}

/** The semi-space cap node was given (--max-semi-space-size=N or --max-semi-space-size N), in MiB. */
export function semiSpaceCapMiB(flags: readonly string[]): number | undefined {
  let cap: number | undefined;
  flags.forEach((flag, i) => {
    const value = /^--max[-_]semi[-_]space[-_]size(?:=(\d+))?$/.exec(flag);
    if (value) cap = Number(value[1] ?? flags[i + 1]);
  });
  return cap !== undefined && Number.isFinite(cap) ? cap : undefined;
}

/**
 * MS-CHAP and EAP (relayed to a RADIUS upstream) carry no typed code: a method that needs one falls back
 * to mfa.non_pap. Said once per place that sets such a method.
 */
function nonPapWarnings(config: Config, warn: (p: Segment[], message: string) => void): void {
  if (config.first_factor.type !== 'radius') return;
  const fallback = config.mfa.non_pap === 'push' ? 'get a push instead (mfa.non_pap: push)' : 'are refused (mfa.non_pap: reject)';
  const needsCode = (m: string | undefined) => m === 'totp' || m === 'challenge';
  if (needsCode(config.mfa.default_method)) warn(['mfa', 'default_method'], `default_method ${config.mfa.default_method} needs a typed code: MS-CHAP and EAP sign-ins of users without another method ${fallback}`);
  for (const [name, g] of Object.entries(config.groups)) {
    if (needsCode(g.method)) warn(['groups', name, 'method'], `group ${JSON.stringify(name)} has method ${g.method}, which needs a typed code: its members' MS-CHAP and EAP sign-ins ${fallback}`);
  }
  for (const [name, u] of Object.entries(config.users)) {
    if (needsCode(u.method)) warn(['users', name, 'method'], `user ${JSON.stringify(name)} has method ${u.method}, which needs a typed code: MS-CHAP and EAP sign-ins ${fallback}`);
  }
}
