// The device's own registration: where pushes reach it (FCM token or Web Push subscription), or deregister.
import type { FastifyInstance } from 'fastify';
import { normalizePushToken } from '../../mfa/push-token.js';
import { ApiError, errorBodySchema } from '../errors.js';
import type { HttpDeps } from '../../http/deps.js';
import { deviceOf } from '../device-auth.js';

export function deviceRoutes(api: FastifyInstance, deps: HttpDeps): void {
  api.get(
    '/web-push',
    {
      schema: {
        summary: "The server's VAPID public key for PushManager.subscribe() (null: no Web Push, poll instead)",
        response: {
          200: {
            type: 'object',
            required: ['vapid_public_key'],
            properties: { vapid_public_key: { type: ['string', 'null'], description: 'base64url P-256 point: the applicationServerKey.' } },
          },
        },
      },
    },
    async () => ({ vapid_public_key: deps.config().mobile_app.web_push?.vapid_public_key ?? null }),
  );

  api.get(
    '/device',
    {
      schema: {
        summary: 'This device as the server knows it: whether pushes reach it',
        security: [{ device: [] }],
        response: {
          200: {
            type: 'object',
            required: ['device_id', 'username', 'name', 'push_token_state'],
            properties: {
              device_id: { type: 'string' },
              username: { type: 'string' },
              name: { type: 'string' },
              push_token_state: {
                type: 'string',
                enum: ['none', 'active', 'stale'],
                description: 'stale: FCM or the push service said the token is gone; send a new one with POST /push-token.',
              },
            },
          },
          '4xx': errorBodySchema,
        },
      },
    },
    async (request) => {
      const device = deviceOf(request);
      const state = !device.pushToken ? 'none' : device.pushTokenStale ? 'stale' : 'active';
      return { device_id: device.id, username: device.username, name: device.name, push_token_state: state };
    },
  );

  api.post<{ Body: { push_token: string | null } }>(
    '/push-token',
    {
      schema: {
        summary: 'Replace the push registration: an FCM registration token or "webpush:" + PushSubscription JSON (null: poll instead)',
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
      const device = deviceOf(request);
      const token = request.body.push_token === null ? null : normalizePushToken(request.body.push_token, deps.config().mobile_app.web_push?.push_services);
      if (token === undefined) throw new ApiError('INVALID_PUSH_TOKEN');
      await deps.store.devices.setPushToken(device.id, token);
      deps.logger.info({ audit: true, event: 'push_token_rotated', user: device.username, device: device.id }, 'push token rotated');
      return reply.status(204).send();
    },
  );

  api.delete(
    '/device',
    { schema: { summary: 'Deregister this device', security: [{ device: [] }], response: { '4xx': errorBodySchema } } },
    async (request, reply) => {
      const device = deviceOf(request);
      await deps.store.devices.remove(device.id);
      deps.logger.info({ audit: true, event: 'device_removed', user: device.username, device: device.id, by: 'device' }, 'device deregistered');
      return reply.status(204).send();
    },
  );
}
