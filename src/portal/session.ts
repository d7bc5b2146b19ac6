// Portal sessions: server-side, in memory (one node; behind a load balancer use sticky sessions),
// identified by a random cookie. Each session carries its own CSRF token (synchronizer token pattern).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { TotpEnrollment } from '../mfa/enrollment.js';

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
  // Sessions start after the password step, so only people who know a password fill this.
  private readonly sessions = new LRUCache<string, PortalSession>({ max: 20_000 });

  constructor(private readonly now: () => number) {}

  /**
   * A visitor before the password step: nothing is stored. Its CSRF token lives in a cookie and must
   * come back in the form (double submit); SameSite=Strict keeps other sites from sending either.
   */
  visitor(csrf: string | undefined): PortalSession {
    const now = this.now();
    return { id: '', csrf: csrf ?? randomBytes(24).toString('base64url'), createdAt: now, lastSeen: now, transient: true };
  }

  create(): PortalSession {
    const now = this.now();
    const session: PortalSession = { id: randomBytes(24).toString('base64url'), csrf: randomBytes(24).toString('base64url'), createdAt: now, lastSeen: now };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session for this id, touched; undefined when unknown or expired (then forgotten). */
  get(id: string | undefined, times: SessionTimes): PortalSession | undefined {
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    const now = this.now();
    const idle = now - session.lastSeen > times.ttlMs;
    const tooOld = session.signedInAt !== undefined && now - session.signedInAt > times.maxMs;
    if (idle || tooOld) {
      this.sessions.delete(id);
      return undefined;
    }
    session.lastSeen = now;
    return session;
  }

  /** A new id (and CSRF token) for the signed-in user: an id seen before sign-in is never trusted after it. */
  rotate(old: PortalSession): PortalSession {
    if (!old.transient) this.sessions.delete(old.id);
    return this.create();
  }

  destroy(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
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
