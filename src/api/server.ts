// The HTTP service: Mobile App API under /api/v1 (and, later, the portal and companion app).
// buildApi() returns an unstarted fastify instance; app.ts decides whether and where it listens.
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { AccessDeps } from '../flow/access.js';
import type { PendingPushes } from '../mfa/pending.js';
import type { EphemeralState } from '../state/state.js';
import type { DeviceRecord, Store } from '../store/store.js';
import { hashSecretToken } from '../mfa/activation.js';
import { ApiError } from './errors.js';
import { activationRoutes } from './routes/activation.js';
import { deviceRoutes } from './routes/device.js';
import { requestRoutes } from './routes/requests.js';
import { totpRoutes } from './routes/totp.js';
import { registerPortal } from '../portal/routes.js';

export interface ApiDeps {
  /** Read per request, so a reload takes effect at once. */
  config: () => Config;
  store: Store;
  state: EphemeralState;
  pending: PendingPushes;
  /** The RADIUS decision path (policy, first factor, lockout): the portal signs users in through it. */
  access: () => AccessDeps;
  logger: Logger;
  now: () => number;
}

export interface BuildApiOptions {
  https?: { cert: Buffer; key: Buffer };
}

const LAST_SEEN_PRECISION_MS = 60_000;

/** The device that owns the bearer token, or a 401. */
export async function authenticateDevice(request: FastifyRequest, deps: ApiDeps): Promise<DeviceRecord> {
  const header = request.headers.authorization ?? '';
  const token = /^Bearer ([A-Za-z0-9_-]{20,200})$/.exec(header)?.[1];
  const device = token ? await deps.store.devices.byTokenHash(hashSecretToken(token)) : undefined;
  if (!device) throw new ApiError('UNAUTHORIZED');
  // last_seen_at is for admins ("is this phone still used?"): a minute's precision spares a write per poll.
  const now = deps.now();
  if (device.lastSeenAt === null || now - device.lastSeenAt >= LAST_SEEN_PRECISION_MS) await deps.store.devices.touch(device.id, now);
  return device;
}

export async function buildApi(deps: ApiDeps, options: BuildApiOptions = {}): Promise<FastifyInstance> {
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

  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number }, request, reply) => {
    if (err instanceof ApiError) return reply.status(err.status).send({ error: { code: err.code, message: err.message } });
    if (err.validation) return reply.status(400).send({ error: { code: 'VALIDATION', message: err.message } });
    if (err.statusCode && err.statusCode < 500) return reply.status(err.statusCode).send({ error: { code: 'BAD_REQUEST', message: err.message } });
    deps.logger.error({ err, url: request.url, component: 'http' }, 'bug: HTTP handler failed');
    return reply.status(500).send({ error: { code: 'INTERNAL', message: 'Internal error; the server log has the details.' } });
  });
  app.setNotFoundHandler((_request, reply) => reply.status(404).send({ error: { code: 'NOT_FOUND', message: 'No such endpoint; the API lives under /api/v1 (see /api/v1/openapi.json).' } }));

  await app.register(
    async (api) => {
      activationRoutes(api, deps);
      requestRoutes(api, deps);
      deviceRoutes(api, deps);
      totpRoutes(api, deps);
      api.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
    },
    { prefix: '/api/v1' },
  );
  // The self-service portal (/portal/) and the companion app (/app/): see src/portal/.
  await registerPortal(app, deps);
  return app;
}
