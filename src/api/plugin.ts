// The Mobile App API as a fastify plugin, registered under /api/v1 by http/server.ts beside the portal.
import type { FastifyPluginAsync } from 'fastify';
import type { HttpDeps } from '../http/deps.js';
import { addDeviceAuthHook } from './device-auth.js';
import { activationRoutes } from './routes/activation.js';
import { deviceRoutes } from './routes/device.js';
import { requestRoutes } from './routes/requests.js';
import { totpRoutes } from './routes/totp.js';

export const apiPlugin: FastifyPluginAsync<{ deps: HttpDeps }> = async (api, { deps }) => {
  addDeviceAuthHook(api, deps);
  activationRoutes(api, deps);
  requestRoutes(api, deps);
  deviceRoutes(api, deps);
  totpRoutes(api, deps);
  api.get('/openapi.json', { schema: { hide: true } }, async () => api.swagger());
};
