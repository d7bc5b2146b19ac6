// Portal sessions: server-side, identified by a random cookie, kept in the ephemeral state (memory for
// one node; Redis, sealed, for several: a user signed in through node A stays signed in at node B
// behind a load balancer). Each session carries its own CSRF token (synchronizer token pattern).
// A request loads its session once and stores it back once, if it changed (portal/routes.ts).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { TotpEnrollment } from '../mfa/enrollment.js';
import type { EphemeralState } from '../state/state.js';

/** Sign-in after the password: which second factors the user may use, and the push if one was sent. */
export interface PendingSignIn {
  username: string;
  totp: boolean;
  push: boolean;
  pushId?: string;
  /** Epoch ms: the password step must be followed by the second factor before this. */
  expires: number;
}

export interface PortalSession {
  /** '' for a visitor: nothing is stored for them (see SessionStore.visitor). */
  readonly id: string;
  readonly csrf: string;
  readonly createdAt: number;
  lastSeen: number;
  /** Set once the user is fully signed in. */
  username?: string;
  signedInAt?: number;
  pendingSignIn?: PendingSignIn;
  /** A TOTP enrollment shown to the user; stored for them only after one valid code. */
  enrollment?: TotpEnrollment;
  /** One message for the next page (after a redirect). */
  flash?: { kind: 'ok' | 'error'; text: string };
  /** A visitor who has not passed the password step: not stored, so a flood of them evicts nobody. */
  transient?: boolean;
}

export interface SessionTimes {
  /** Idle timeout. */
  ttlMs: number;
  /** Absolute lifetime after sign-in. */
  maxMs: number;
}

/** How long the password step is good for before the second factor. */
export const SIGN_IN_STEP_MS = 5 * 60_000;

const COOKIE = 'rmfa_portal';
/** Over HTTPS the __Host- prefix pins the cookie to this host, path / and Secure (RFC 6265bis §4.1.3.2). */
const SECURE_COOKIE = `__Host-${COOKIE}`;
/** A visitor's CSRF token (double-submit: the form must carry what the cookie holds). */
const CSRF_COOKIE = 'rmfa_csrf';

export class SessionStore {
  /** Sessions ended (signed out, locked) during the request that holds them: never stored back. */
  private readonly ended = new WeakSet<PortalSession>();

  /** `state` keeps the sessions: only people who know a password get one (see visitor), and memory bounds them. */
  constructor(
    private readonly state: EphemeralState,
    private readonly now: () => number,
  ) {}

  /**
   * A visitor before the password step: nothing is stored. Its CSRF token lives in a cookie and must
   * come back in the form (double submit); SameSite=Strict keeps other sites from sending either.
   */
  visitor(csrf: string | undefined): PortalSession {
    const now = this.now();
    return { id: '', csrf: csrf ?? randomBytes(24).toString('base64url'), createdAt: now, lastSeen: now, transient: true };
  }

  /** A new session; stored by save() at the end of the request that made it. */
  create(): PortalSession {
    const now = this.now();
    return { id: randomBytes(24).toString('base64url'), csrf: randomBytes(24).toString('base64url'), createdAt: now, lastSeen: now };
  }

  /**
   * The live session for this id, touched, and its stored form (to tell at the end whether it changed);
   * undefined when unknown or expired (then forgotten).
   */
  async get(id: string | undefined, times: SessionTimes): Promise<{ session: PortalSession; stored: string } | undefined> {
    if (!id) return undefined;
    const stored = await this.state.getSession(storageKey(id));
    if (stored === undefined) return undefined;
    const session = parse(stored, id);
    if (!session) return undefined;
    const now = this.now();
    const idle = now - session.lastSeen > times.ttlMs;
    const tooOld = session.signedInAt !== undefined && now - session.signedInAt > times.maxMs;
    if (idle || tooOld) {
      await this.state.deleteSession(storageKey(id));
      return undefined;
    }
    session.lastSeen = now;
    return { session, stored };
  }

  /** Stores the session (not a visitor's, not an ended one) if it differs from `stored`: until idle for ttl, at most until max after sign-in. */
  async save(session: PortalSession, stored: string | undefined, times: SessionTimes): Promise<void> {
    if (session.transient || this.ended.has(session)) return;
    const text = serialize(session);
    if (text === stored) return;
    const left = session.signedInAt === undefined ? times.ttlMs : Math.min(times.ttlMs, session.signedInAt + times.maxMs - this.now());
    if (left <= 0) return this.destroy(session);
    await this.state.putSession(storageKey(session.id), text, left, stored !== undefined);
  }

  /** A new id (and CSRF token) for the signed-in user: an id seen before sign-in is never trusted after it. */
  async rotate(old: PortalSession): Promise<PortalSession> {
    if (!old.transient) await this.destroy(old);
    return this.create();
  }

  async destroy(session: PortalSession): Promise<void> {
    this.ended.add(session);
    if (!session.transient) await this.state.deleteSession(storageKey(session.id));
  }
}

/** Stored under a hash of the cookie: a reader of Redis learns no session id to present. */
function storageKey(id: string): string {
  return `portal:${createHash('sha256').update(id).digest('base64url')}`;
}

/** JSON with the enrollment's secret as base64; the state seals the whole text in Redis (state/redis.ts). */
function serialize(session: PortalSession): string {
  const { enrollment, transient: _transient, ...rest } = session;
  return JSON.stringify(enrollment ? { ...rest, enrollment: { ...enrollment, secret: enrollment.secret.toString('base64') } } : rest);
}

type StoredSession = Omit<PortalSession, 'enrollment'> & { enrollment?: Omit<TotpEnrollment, 'secret'> & { secret: string } };

function parse(text: string, id: string): PortalSession | undefined {
  try {
    const raw = JSON.parse(text) as StoredSession;
    // The id is the one asked for: a stored record never names another session.
    if (raw.id !== id) return undefined;
    const { enrollment, ...rest } = raw;
    return enrollment ? { ...rest, enrollment: { ...enrollment, secret: Buffer.from(enrollment.secret, 'base64') } } : rest;
  } catch {
    return undefined;
  }
}

export function cookieName(secure: boolean): string {
  return secure ? SECURE_COOKIE : COOKIE;
}

/** The session id from a Cookie header. */
export function sessionIdFrom(cookieHeader: string | undefined, secure: boolean): string | undefined {
  return cookieValue(cookieHeader, cookieName(secure));
}

/** A visitor's CSRF token from a Cookie header. */
export function visitorCsrfFrom(cookieHeader: string | undefined, secure: boolean): string | undefined {
  return cookieValue(cookieHeader, secure ? `__Host-${CSRF_COOKIE}` : CSRF_COOKIE);
}

export function visitorCsrfCookie(token: string, secure: boolean): string {
  return `${secure ? `__Host-${CSRF_COOKIE}` : CSRF_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) {
      const value = part.slice(at + 1).trim();
      return /^[A-Za-z0-9_-]{16,64}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}

/** HttpOnly: no script reads it; SameSite=Strict: no other site's form or link sends it; Secure over HTTPS. */
export function sessionCookie(id: string, secure: boolean): string {
  return `${cookieName(secure)}=${id}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

export function clearedCookie(secure: boolean): string {
  return `${cookieName(secure)}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}

/** Constant-time check of a form's CSRF token against the session's. */
export function csrfMatches(session: PortalSession, token: unknown): boolean {
  if (typeof token !== 'string') return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
