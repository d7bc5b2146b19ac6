// POST /api/v1/totp/confirm: the app proves it holds the TOTP secret its activation handed out; only
// then does that secret replace the account's (as a portal enrollment is confirmed by one code).
import type { FastifyInstance } from 'fastify';
import { confirmEnrollment } from '../../flow/second-factor.js';
import { ApiError, errorBodySchema } from '../errors.js';
import type { HttpDeps } from '../../http/deps.js';
import { deviceOf } from '../device-auth.js';
import { pendingEnrollmentKey } from './activation.js';

export function totpRoutes(api: FastifyInstance, deps: HttpDeps): void {
  api.post<{ Body: { code: string } }>(
    '/totp/confirm',
    {
      schema: {
        summary: "Confirm the TOTP secret of this device's activation with a current code from it",
        security: [{ device: [] }],
        body: { type: 'object', additionalProperties: false, required: ['code'], properties: { code: { type: 'string', pattern: '^[0-9]{6,8}$' } } },
        response: { 200: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['enrolled'] } } }, '4xx': errorBodySchema },
      },
    },
    async (request) => {
      const device = deviceOf(request);
      const key = pendingEnrollmentKey(device.id);
      const enrollment = await deps.state.getEnrollment(key);
      if (!enrollment) throw new ApiError('NO_ENROLLMENT');
      const confirmed = await confirmEnrollment({ username: device.username, enrollment, code: request.body.code }, deps.now(), deps.access());
      if (!confirmed.ok) throw new ApiError('BAD_CODE');
      await deps.state.deleteEnrollment(key);
      deps.logger.info({ audit: true, event: 'totp_enrolled', user: device.username, by: 'app', device: device.id, replaced: confirmed.replaced }, 'TOTP enrolled by the app');
      return { status: 'enrolled' as const };
    },
  );
}
