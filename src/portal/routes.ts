// The self-service portal (/portal/) and the companion app's files (/app/): a fastify plugin that
// http/server.ts registers beside the Mobile App API.
import type { FastifyPluginAsync } from 'fastify';
import type { HttpDeps } from '../http/deps.js';
import { accountRoutes } from './account-routes.js';
import { EngineUnavailableError } from '../health/engine-monitor.js';
import { attachedSession, attachSession, isHttps, sendPage, sessionOf, storedFormOf, type PortalDeps } from './context.js';
import { isLocked, whereFrom } from '../flow/lockout.js';
import { csrfMatches, SessionStore, sessionIdFrom, visitorCsrfCookie, visitorCsrfFrom } from './session.js';
import { signInRoutes } from './sign-in-routes.js';
import { CONTENT_SECURITY_POLICY, staticRoutes } from './static.js';
import { messagePage } from './views.js';

const UNAVAILABLE_TEXT = 'The sign-in service is not available right now. Try again in a minute.';

function errorPage(text: string): string {
  return `<!doctype html><html lang="en"><title>Error</title><main><p role="alert">${text}</p><p><a href="/portal/">Back</a></p></main></html>`;
}

/** Registers /app/* and, unless portal.enabled is false, /portal/* and a redirect from / to the portal. */
export const portalPlugin: FastifyPluginAsync<{ deps: HttpDeps }> = async (app, { deps: httpDeps }) => {
  const deps: PortalDeps = { ...httpDeps, sessions: new SessionStore(httpDeps.state, httpDeps.now) };
  const times = () => ({ ttlMs: deps.config().portal.session_ttl, maxMs: deps.config().portal.session_max });
  staticRoutes(app);
  if (!httpDeps.config().portal.enabled) return;
  app.get('/', async (_request, reply) => reply.redirect('/portal/', 302));
  await app.register(
    async (portal) => {
      // HTML forms post application/x-www-form-urlencoded; parsed here only, never for the API.
      portal.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8 * 1024 }, (_request, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      });

      portal.addHook('onRequest', async (request, reply) => {
        reply
          .header('content-security-policy', CONTENT_SECURITY_POLICY)
          .header('x-content-type-options', 'nosniff')
          .header('x-frame-options', 'DENY')
          .header('referrer-policy', 'no-referrer')
          .header('cache-control', 'no-store');
        const secure = isHttps(request);
        const found = await deps.sessions.get(sessionIdFrom(request.headers.cookie, secure), times());
        let session = found?.session;
        // A lock or a fraud report ends the user's sessions: checked on each request, so it holds for a
        // lock set by the CLI or another node too.
        const user = session?.username ?? session?.pendingSignIn?.username;
        if (session && user && isLocked(await deps.store.getUser(user), deps.now(), await whereFrom(user, request.ip, deps.access()))) {
          await deps.sessions.destroy(session);
          deps.logger.info({ audit: true, event: 'portal_session_ended', reason: 'locked', user, src: request.ip }, 'portal session ended: the account is locked');
          session = undefined;
        }
        if (!session) {
          const csrf = visitorCsrfFrom(request.headers.cookie, secure);
          session = deps.sessions.visitor(csrf);
          if (csrf === undefined) reply.header('set-cookie', visitorCsrfCookie(session.csrf, secure));
        }
        attachSession(request, session, found?.session === session ? found.stored : undefined);
      });

      // Stored once per request, before the reply leaves: the next request may reach another node.
      // If it cannot be stored (Redis down), the page would lie: it says the service is unavailable instead.
      portal.addHook('onSend', async (request, reply, payload) => {
        const session = attachedSession(request);
        if (!session) return payload;
        try {
          await deps.sessions.save(session, storedFormOf(request), times());
          return payload;
        } catch (err) {
          if (!(err instanceof EngineUnavailableError)) throw err;
          reply.code(503).removeHeader('location').removeHeader('set-cookie').type('text/html; charset=utf-8');
          return errorPage(UNAVAILABLE_TEXT);
        }
      });

      // Every form carries the session's token (synchronizer token): a POST without it changes nothing.
      portal.addHook('preHandler', async (request, reply) => {
        if (request.method !== 'POST') return;
        const session = sessionOf(request);
        if (csrfMatches(session, (request.body as Record<string, unknown> | undefined)?._csrf)) return;
        deps.logger.warn({ audit: true, event: 'portal_refused', reason: 'csrf', url: request.url, src: request.ip, user: session.username }, 'portal form without a valid CSRF token refused');
        return sendPage(reply, request, deps, {
          title: 'Form expired',
          status: 403,
          body: messagePage('This form has expired or did not come from this site. Nothing was changed. Reload the page and try again.', '/portal/'),
        });
      });

      portal.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
        // Redis or PostgreSQL down: logged once by the engine monitor, not a bug.
        if (err instanceof EngineUnavailableError) return reply.status(503).type('text/html; charset=utf-8').send(errorPage(UNAVAILABLE_TEXT));
        const status = err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
        if (status === 500) request.log.error({ err, url: request.url }, 'bug: portal handler failed');
        const text = status === 500 ? 'Something went wrong on the server. Try again; if it keeps happening, tell your helpdesk.' : 'The request was not understood. Go back and try again.';
        return reply.status(status).type('text/html; charset=utf-8').send(errorPage(text));
      });
      portal.setNotFoundHandler((_request, reply) =>
        reply.status(404).type('text/html; charset=utf-8').send('<!doctype html><html lang="en"><title>Not found</title><main><p role="alert">No such page.</p><p><a href="/portal/">Go to your sign-in settings</a></p></main></html>'),
      );

      signInRoutes(portal, deps);
      accountRoutes(portal, deps);
    },
    { prefix: '/portal' },
  );
};
