// What every portal handler shares: the session of the request, page replies, the switches' refusals.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { HttpDeps } from '../http/deps.js';
import type { PortalSession, SessionStore } from './session.js';
import { messagePage, page, type Html } from './views.js';

export interface PortalDeps extends HttpDeps {
  sessions: SessionStore;
}

const sessions = new WeakMap<FastifyRequest, PortalSession>();
/** The stored form of the session the request started with: it is stored back only if it changed. */
const storedForms = new WeakMap<FastifyRequest, string>();

export function attachSession(request: FastifyRequest, session: PortalSession, stored?: string): void {
  sessions.set(request, session);
  if (stored === undefined) storedForms.delete(request);
  else storedForms.set(request, stored);
}

/** The request's session, if the onRequest hook got as far as attaching one. */
export function attachedSession(request: FastifyRequest): PortalSession | undefined {
  return sessions.get(request);
}

/** What the session was when the request loaded it (undefined: made during the request). */
export function storedFormOf(request: FastifyRequest): string | undefined {
  return storedForms.get(request);
}

/** The request's session (the onRequest hook made or found one; POSTs without one were refused). */
export function sessionOf(request: FastifyRequest): PortalSession {
  const s = sessions.get(request);
  if (!s) throw new Error('bug: portal route without a session');
  return s;
}

export function isHttps(request: FastifyRequest): boolean {
  return request.protocol === 'https';
}

export interface SendPage {
  title: string;
  body: Html;
  status?: number;
  message?: { kind: 'ok' | 'error'; text: string };
}

/** Renders a full page (a pending flash message is shown once). */
export function sendPage(reply: FastifyReply, request: FastifyRequest, deps: PortalDeps, p: SendPage): FastifyReply {
  const session = sessionOf(request);
  const message = p.message ?? session.flash;
  session.flash = undefined;
  return reply
    .status(p.status ?? 200)
    .type('text/html; charset=utf-8')
    .send(page({ title: p.title, username: session.username, csrf: session.csrf, accountName: deps.config().mobile_app.account_name, message }, p.body));
}

/** POST-redirect-GET with a message for the next page. */
export function redirectWith(reply: FastifyReply, request: FastifyRequest, to: string, flash?: PortalSession['flash']): FastifyReply {
  if (flash) sessionOf(request).flash = flash;
  return reply.redirect(to, 303);
}

export type PortalSwitch = 'allow_user_enrollment' | 'allow_method_selection' | 'allow_mobile_app_activation';

const SWITCH_TEXT: Record<PortalSwitch, string> = {
  allow_user_enrollment: 'Setting up an authenticator in the portal is turned off by your administrator. Ask your helpdesk.',
  allow_method_selection: 'Choosing your own sign-in method is turned off by your administrator.',
  allow_mobile_app_activation: 'Activating the app from the portal is turned off by your administrator. Ask your helpdesk.',
};

/** The admin's switches are enforced here, on every request, not only by hiding buttons. */
export function refuseUnlessAllowed(name: PortalSwitch, reply: FastifyReply, request: FastifyRequest, deps: PortalDeps): boolean {
  if (deps.config().portal[name]) return false;
  deps.logger.warn({ audit: true, event: 'portal_refused', reason: name, user: sessionOf(request).username, src: request.ip }, 'portal action refused: switched off');
  sendPage(reply, request, deps, { title: 'Not available', status: 403, body: messagePage(SWITCH_TEXT[name]) });
  return true;
}

/** The signed-in user, or a reply that sends the visitor to the sign-in page. */
export function signedInUser(reply: FastifyReply, request: FastifyRequest, deps: PortalDeps): string | undefined {
  const username = sessionOf(request).username;
  if (username) return username;
  if (request.method === 'GET') reply.redirect('/portal/sign-in', 303);
  else sendPage(reply, request, deps, { title: 'Signed out', status: 401, body: messagePage('Your session has ended. Sign in again.', '/portal/sign-in') });
  return undefined;
}

/** A form field as a bounded string ('' when absent or not a string). */
export function field(body: unknown, name: string, max = 256): string {
  const v = (body as Record<string, unknown> | undefined)?.[name];
  return typeof v === 'string' ? v.slice(0, max) : '';
}
