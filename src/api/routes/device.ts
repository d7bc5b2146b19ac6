// The device's own registration: rotate its FCM token, or deregister.
import type { FastifyInstance } from 'fastify';
import { errorBodySchema } from '../errors.js';
import { authenticateDevice, type ApiDeps } from '../server.js';

export function deviceRoutes(api: FastifyInstance, deps: ApiDeps): void {
  api.post<{ Body: { push_token: string | null } }>(
    '/push-token',
    {
      schema: {
        summary: 'Replace the FCM registration token (null: poll instead)',
        security: [{ device: [] }],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['push_token'],
          properties: { push_token: { type: ['string', 'null'], minLength: 1, maxLength: 4096 } },
        },
        response: { '4xx': errorBodySchema },
      },
    },
    async (request, reply) => {
      const device = await authenticateDevice(request, deps);
      await deps.store.devices.setPushToken(device.id, request.body.push_token);
      deps.logger.info({ audit: true, event: 'push_token_rotated', user: device.username, device: device.id }, 'push token rotated');
      return reply.status(204).send();
    },
  );

  api.delete(
    '/device',
    { schema: { summary: 'Deregister this device', security: [{ device: [] }], response: { '4xx': errorBodySchema } } },
    async (request, reply) => {
      const device = await authenticateDevice(request, deps);
      await deps.store.devices.remove(device.id);
      deps.logger.info({ audit: true, event: 'device_removed', user: device.username, device: device.id, by: 'device' }, 'device deregistered');
      return reply.status(204).send();
    },
  );
}
