// The HTTP service: the Mobile App API (/api/v1) and the portal with the companion app (/portal/, /app/),
// registered side by side as sibling plugins. buildHttp() returns an unstarted fastify instance; app.ts
// decides whether and where it listens.
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { apiErrorBody } from '../api/errors.js';
import { apiPlugin } from '../api/plugin.js';
import { portalPlugin } from '../portal/routes.js';
import type { HttpDeps } from './deps.js';

export interface BuildHttpOptions {
  https?: { cert: Buffer; key: Buffer };
}

export async function buildHttp(deps: HttpDeps, options: BuildHttpOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    // X-Forwarded-For is believed only from a reverse proxy on this host: rate limits key on the client address.
    trustProxy: 'loopback',
    bodyLimit: 16 * 1024,
    ...(options.https ? { https: options.https } : {}),
  }) as unknown as FastifyInstance;

  await app.register(swagger, {
    // Only the Mobile App API is the published contract; the portal and app pages stay out of it.
    transform: ({ schema, url }) => ({ schema: url.startsWith('/api/v1/') ? schema : { ...schema, hide: true }, url }),
    openapi: {
      openapi: '3.0.3',
      info: { title: 'radius-mfa Mobile App API', version: '1', description: 'Activate a phone, list pending sign-in requests, answer them with a signed approve / deny / fraud. See docs/mobile-api.md.' },
      components: { securitySchemes: { device: { type: 'http', scheme: 'bearer', description: 'device_token from POST /api/v1/activation' } } },
    },
  });

  // The API's JSON errors are the default; the portal sets HTML ones for /portal/.
  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number }, request, reply) => {
    const api = apiErrorBody(err);
    if (api) return reply.status(api.status).send(api.body);
    deps.logger.error({ err, url: request.url, component: 'http' }, 'bug: HTTP handler failed');
    return reply.status(500).send({ error: { code: 'INTERNAL', message: 'Internal error; the server log has the details.' } });
  });
  app.setNotFoundHandler((_request, reply) => reply.status(404).send({ error: { code: 'NOT_FOUND', message: 'No such endpoint; the API lives under /api/v1 (see /api/v1/openapi.json).' } }));

  await app.register(apiPlugin, { prefix: '/api/v1', deps });
  await app.register(portalPlugin, { deps });
  return app;
}
