// /portal/sign-in: password, then the second factor (code or push), then a new session id.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { attachSession, field, isHttps, redirectWith, sendPage, sessionOf, type PortalDeps } from './context.js';
import { clearedCookie, SIGN_IN_STEP_MS, sessionCookie, type PortalSession } from './session.js';
import { canonicalUsername } from '../flow/username.js';
import { checkCode, checkPassword, checkPush, sendPush, PORTAL_MESSAGES } from './sign-in.js';
import { pushWaiting, secondFactorForm, signInForm } from './views.js';

export function signInRoutes(portal: FastifyInstance, deps: PortalDeps): void {
  portal.get('/sign-in', async (request, reply) => {
    const session = sessionOf(request);
    if (session.username) return reply.redirect('/portal/', 303);
    const pending = livePending(session, deps);
    const signedOut = (request.query as Record<string, string>).signed_out !== undefined;
    if (!pending) return sendPage(reply, request, deps, { title: 'Sign in', body: signInForm(session.csrf), ...(signedOut ? { message: { kind: 'ok', text: 'You are signed out.' } } : {}) });
    if (pending.pushId) return sendPage(reply, request, deps, { title: 'Approve on your phone', body: pushWaiting(session.csrf, (await deps.pending.get(pending.pushId))?.number !== undefined) });
    return sendPage(reply, request, deps, { title: 'Second step', body: secondFactorForm(session.csrf, pending) });
  });

  portal.post('/sign-in', async (request, reply) => {
    const session = sessionOf(request);
    const typed = field(request.body, 'username').trim();
    const password = field(request.body, 'password', 1024);
    if (!typed || !password) {
      return sendPage(reply, request, deps, { title: 'Sign in', status: 400, body: signInForm(session.csrf, typed), message: { kind: 'error', text: 'Type your username and your password.' } });
    }
    const result = await checkPassword(deps, typed, password, request.ip);
    if (result.kind === 'refused') {
      audit(deps, request, canonicalUsername(typed, deps.access().usernames) ?? typed, 'reject', result.reason);
      const status = result.reason === 'rate_limited' ? 429 : 401;
      return sendPage(reply, request, deps, { title: 'Sign in', status, body: signInForm(session.csrf, typed), message: { kind: 'error', text: result.message } });
    }
    const username = result.username;
    if (result.kind === 'signed_in') return completeSignIn(reply, request, deps, username, result.reason);
    // The password passed: only now is a session stored (a visitor before this step has none).
    const started = session.transient ? startSession(reply, request, deps) : session;
    started.pendingSignIn = { username, totp: result.totp, push: result.push, expires: deps.now() + SIGN_IN_STEP_MS };
    // Only a phone: send the request at once instead of asking for a click.
    if (!result.totp) return startPush(reply, request, deps, started);
    return reply.redirect('/portal/sign-in', 303);
  });

  portal.post('/sign-in/code', async (request, reply) => {
    const session = sessionOf(request);
    const pending = livePending(session, deps);
    if (!pending) return backToSignIn(reply, request, deps);
    const result = await checkCode(deps, pending.username, field(request.body, 'code', 16), request.ip);
    if (result.kind === 'signed_in') return completeSignIn(reply, request, deps, pending.username, 'totp');
    audit(deps, request, pending.username, 'reject', result.kind === 'refused' ? result.reason : 'waiting');
    const message = { kind: 'error' as const, text: result.kind === 'refused' ? result.message : PORTAL_MESSAGES.expired };
    if (result.kind === 'refused' && result.reason === 'locked') {
      session.pendingSignIn = undefined;
      return sendPage(reply, request, deps, { title: 'Sign in', status: 401, body: signInForm(session.csrf), message });
    }
    return sendPage(reply, request, deps, { title: 'Second step', status: 401, body: secondFactorForm(session.csrf, pending), message });
  });

  portal.post('/sign-in/push', async (request, reply) => {
    const session = sessionOf(request);
    if (!livePending(session, deps)) return backToSignIn(reply, request, deps);
    return startPush(reply, request, deps, session);
  });

  // Polled by the waiting page's script: has the phone answered yet? (GET: no change, no CSRF needed.)
  portal.get('/sign-in/push/status', async (request, reply) => {
    const pending = livePending(sessionOf(request), deps);
    const push = pending?.pushId ? await deps.pending.get(pending.pushId) : undefined;
    reply.header('cache-control', 'no-store');
    return { state: !push ? 'gone' : push.outcome ? 'answered' : 'waiting', approved: push?.outcome?.kind === 'approve', number_required: push?.number !== undefined };
  });

  portal.post('/sign-in/push/complete', async (request, reply) => {
    const session = sessionOf(request);
    const pending = livePending(session, deps);
    if (!pending?.pushId) return backToSignIn(reply, request, deps);
    const numberMatching = (await deps.pending.get(pending.pushId))?.number !== undefined;
    const result = await checkPush(deps, pending.username, pending.pushId, field(request.body, 'number', 8) || undefined, request.ip);
    if (result.kind === 'signed_in') return completeSignIn(reply, request, deps, pending.username, 'push');
    if (result.kind === 'waiting') {
      const text = (await deps.pending.get(pending.pushId))?.outcome ? PORTAL_MESSAGES.numberMissing : 'Not approved yet: approve the request in the app, then continue.';
      return sendPage(reply, request, deps, { title: 'Approve on your phone', status: 202, body: pushWaiting(session.csrf, numberMatching), message: { kind: 'error', text } });
    }
    audit(deps, request, pending.username, 'reject', result.reason);
    session.pendingSignIn = undefined;
    return sendPage(reply, request, deps, { title: 'Sign in', status: 401, body: signInForm(session.csrf, pending.username), message: { kind: 'error', text: result.message } });
  });

  portal.post('/sign-in/cancel', async (request, reply) => {
    sessionOf(request).pendingSignIn = undefined;
    return reply.redirect('/portal/sign-in', 303);
  });

  portal.post('/sign-out', async (request, reply) => {
    const session = sessionOf(request);
    await deps.sessions.destroy(session);
    if (session.username) deps.logger.info({ audit: true, event: 'portal_sign_out', user: session.username, src: request.ip }, 'portal sign-out');
    return reply.header('set-cookie', clearedCookie(isHttps(request))).redirect('/portal/sign-in?signed_out', 303);
  });
}

function startSession(reply: FastifyReply, request: FastifyRequest, deps: PortalDeps): PortalSession {
  const session = deps.sessions.create();
  attachSession(request, session);
  reply.header('set-cookie', sessionCookie(session.id, isHttps(request)));
  return session;
}

/** The sign-in step is gone (expired, or never started): start again. A visitor has no session to keep a message for a redirect. */
function backToSignIn(reply: FastifyReply, request: FastifyRequest, deps: PortalDeps) {
  const message = { kind: 'error' as const, text: PORTAL_MESSAGES.expired };
  if (!sessionOf(request).transient) return redirectWith(reply, request, '/portal/sign-in', message);
  return sendPage(reply, request, deps, { title: 'Sign in', status: 401, body: signInForm(sessionOf(request).csrf), message });
}

function livePending(session: PortalSession, deps: PortalDeps) {
  const p = session.pendingSignIn;
  if (p && p.expires < deps.now()) session.pendingSignIn = undefined;
  return session.pendingSignIn;
}

async function startPush(reply: FastifyReply, request: FastifyRequest, deps: PortalDeps, session: PortalSession) {
  const pending = session.pendingSignIn!;
  const sent = await sendPush(deps, pending.username, request.ip);
  if (sent.kind === 'refused') {
    audit(deps, request, pending.username, 'reject', sent.reason);
    if (!pending.totp) session.pendingSignIn = undefined;
    const body = pending.totp ? secondFactorForm(session.csrf, pending) : signInForm(session.csrf, pending.username);
    return sendPage(reply, request, deps, { title: 'Sign in', status: 503, body, message: { kind: 'error', text: sent.message } });
  }
  pending.pushId = sent.push.id;
  return reply.redirect('/portal/sign-in', 303);
}

/** Signed in: a fresh session id (no fixation), the old one forgotten. */
async function completeSignIn(reply: FastifyReply, request: FastifyRequest, deps: PortalDeps, username: string, factor: string) {
  const old = sessionOf(request);
  const session = await deps.sessions.rotate(old);
  session.username = username;
  session.signedInAt = deps.now();
  attachSession(request, session);
  audit(deps, request, username, 'accept', factor);
  return reply.header('set-cookie', sessionCookie(session.id, isHttps(request))).redirect('/portal/', 303);
}

function audit(deps: PortalDeps, request: FastifyRequest, user: string, result: 'accept' | 'reject', reason: string): void {
  deps.logger.info({ audit: true, event: 'portal_sign_in', user, src: request.ip, result, reason }, 'portal sign-in');
}
