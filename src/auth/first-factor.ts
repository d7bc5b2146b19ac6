import type { Awaitable } from '../shared/awaitable.js';
import type { RadiusPacket } from '../radius/packet.js';
import type { UserRecord } from '../store/store.js';
import type { Lane } from './work-queue.js';

/** The first factor's answer: wrong password and backend down are different things (never a boolean). */
export type FirstFactorResult =
  /** groups: directory groups (LDAP); reply: encoded attributes of an upstream Access-Accept, passed to the NAS. */
  | { kind: 'accept'; groups?: readonly string[]; reply?: Buffer }
  | { kind: 'reject'; reason: 'bad_password' | 'unknown_user' | 'no_password' }
  /** The upstream RADIUS server asks something itself: relay its prompt; the answer comes back with `upstreamState`. */
  | { kind: 'challenge'; upstreamState: Buffer; message: string }
  | { kind: 'unavailable'; reason: string };

export type GroupsResult = { kind: 'ok'; groups: readonly string[] } | { kind: 'unavailable'; reason: string };

/** The NAS's Access-Request a check answers, and the client (secret) it came from. The server's AccessRequest is one. */
export interface NasRequest {
  packet: RadiusPacket;
  client: { secret: Buffer };
}

/**
 * An upstream RADIUS server's answer to a relayed MS-CHAP / EAP request. `reply` holds the attributes
 * for the NAS, hidden ones re-hidden for it. `userName`: the upstream Accept's User-Name (the inner identity).
 */
export type RelayResult =
  | { kind: 'accept'; userName: string | undefined; reply: Buffer }
  | { kind: 'reject'; reply: Buffer }
  | { kind: 'challenge'; reply: Buffer }
  | { kind: 'unavailable'; reason: string };

export interface FirstFactorContext {
  /** Request number, for log lines. */
  q?: number;
  /** The NAS's request: its attributes go upstream, and the upstream's hidden attributes are re-hidden for it. */
  nas?: NasRequest;
  /** State of an upstream Access-Challenge this request answers (RFC 2865 §4.4). */
  upstreamState?: Buffer;
  /**
   * The name as the user typed it (`CORP\\Alice`), where `username` is the canonical one (`alice`).
   * Only an upstream RADIUS server gets it, since it may need the realm; everything here uses `username`.
   */
  typedUsername?: string;
  /**
   * The canonical name the user logged in with, when the directory named them otherwise (see
   * FirstFactor.directoryName): the directory finds the entry by this one.
   */
  loginName?: string;
  /** Epoch ms by which the answer must be out (the NAS gives up then): a check that cannot finish by then is not started. */
  deadline?: number;
  /** familiar: the user signed in from this source before; such checks go first under load. */
  lane?: Lane;
}

export type DirectoryNameResult = { kind: 'found'; name: string } | { kind: 'not_found' } | { kind: 'unavailable'; reason: string };

/** Checks the password part of what the user typed. Backends: local, none, ldap, radius (upstream). */
export interface FirstFactor {
  readonly type: string;
  /** Awaitable: with no check to make (none), the answer is there at once (shared/awaitable.ts). */
  check(username: string, password: string, user: UserRecord | undefined, context?: FirstFactorContext): Awaitable<FirstFactorResult>;
  /**
   * The reason to refuse without any check, when the record already tells (local: no such user, or no
   * password): cheap answers that must not look cheap (see waitAsIfChecked).
   */
  cheapReject?(user: UserRecord | undefined): 'unknown_user' | 'no_password' | undefined;
  /** Resolves after a time drawn from recent real checks: a refusal without a check leaves as late as one with. */
  waitAsIfChecked?(): Promise<void>;
  /** Directory groups known before the password check (LDAP with a service account), so they can choose the method. */
  groupsOf?(username: string, context?: FirstFactorContext): Promise<GroupsResult>;
  /** The directory's own name for whoever logs in as `username` (an alias: mail, UPN), when it is configured to tell. */
  directoryName?(username: string, context?: FirstFactorContext): Promise<DirectoryNameResult>;
  /** Only a RADIUS upstream can check what the NAS sent without a cleartext password (CHAP, MS-CHAP, EAP). */
  relay?(request: NasRequest, context?: FirstFactorContext): Promise<RelayResult>;
  close?(): Promise<void>;
}
