// POST /api/v1/activation: a one-time activation code + the device's public key -> device id and token.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { hashPassword } from '../../auth/password-hash.js';
import { checkPin, startEnrollment } from '../../flow/second-factor.js';
import { hashSecretToken, newDeviceToken, normalizeActivationCode } from '../../mfa/activation.js';
import { secretText, type TotpEnrollment } from '../../mfa/enrollment.js';
import { normalizePushToken } from '../../mfa/push-token.js';
import { parseDevicePublicKey } from '../../mfa/signature.js';
import { ApiError, errorBodySchema } from '../errors.js';
import type { HttpDeps } from '../../http/deps.js';

interface ActivationBody {
  activation_code: string;
  device_name: string;
  public_key: string;
  push_token?: string;
  pin?: string;
}

const MAX_ATTEMPTS_PER_ADDRESS = 10;
const WRONG_PIN_AT_ACTIVATION = 'This account already has a PIN and this is not it: type the current PIN, or ask your helpdesk to reset it (radius-mfa user reset-pin).';
const ATTEMPT_WINDOW_MS = 10 * 60_000;

export function activationRoutes(api: FastifyInstance, deps: HttpDeps): void {
  api.post<{ Body: ActivationBody }>(
    '/activation',
    {
      schema: {
        summary: 'Activate a device with a one-time activation code',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['activation_code', 'device_name', 'public_key'],
          properties: {
            activation_code: { type: 'string', minLength: 6, maxLength: 32, description: 'As shown by the CLI or the portal; spaces and dashes are ignored.' },
            device_name: { type: 'string', minLength: 1, maxLength: 100 },
            public_key: { type: 'string', minLength: 40, maxLength: 400, description: 'ECDSA P-256, base64 SPKI DER.' },
            push_token: { type: 'string', minLength: 1, maxLength: 4096, description: 'FCM registration token, or "webpush:" + the PushSubscription JSON; omit to poll.' },
            pin: { type: 'string', pattern: '^[0-9]{4,12}$', description: 'Sets the account PIN when none is set (required then if mfa.push.pin is "required"); when one is set it must be that PIN: an activation never changes a PIN.' },
          },
        },
        response: {
          201: {
            type: 'object',
            required: ['device_id', 'device_token', 'account_name', 'username'],
            properties: {
              device_id: { type: 'string' },
              device_token: { type: 'string' },
              account_name: { type: 'string' },
              username: { type: 'string' },
              totp: {
                type: 'object',
                description: 'A new TOTP secret (never the account\'s existing one). It replaces the existing one only once the app confirms it with POST /api/v1/totp/confirm.',
                properties: { secret: { type: 'string' }, digits: { type: 'integer' }, period: { type: 'integer' }, algorithm: { type: 'string' } },
              },
            },
          },
          '4xx': errorBodySchema,
        },
      },
    },
    async (request, reply) => {
      const config = deps.config();
      const body = request.body;
      // Codes are 12 digits: bound the guessing per address.
      if ((await deps.state.countBySource(`activation:${request.ip}`, ATTEMPT_WINDOW_MS)) > MAX_ATTEMPTS_PER_ADDRESS) throw new ApiError('RATE_LIMITED');
      const publicKey = parseDevicePublicKey(body.public_key);
      if (!publicKey) throw new ApiError('INVALID_PUBLIC_KEY');
      const pushToken = body.push_token === undefined ? null : normalizePushToken(body.push_token, config.mobile_app.web_push?.push_services);
      if (pushToken === undefined) throw new ApiError('INVALID_PUSH_TOKEN');
      // Checked before the code is used up, so the app can ask and send again with the same code.
      if (config.mfa.push.pin === 'required' && body.pin === undefined) throw new ApiError('PIN_REQUIRED');

      const now = deps.now();
      const activation = await deps.store.devices.consumeActivation(hashSecretToken(normalizeActivationCode(body.activation_code)), now);
      if (!activation) throw new ApiError('ACTIVATION_INVALID');
      const { username } = activation;
      const pinHash = (await deps.store.getUser(username))?.pinHash ?? null;
      // Whoever holds an activation code must not be able to replace the PIN: only prove it.
      if (body.pin !== undefined && pinHash !== null) {
        // Whoever holds the code is no known source of the user's: failures count toward the user's lock.
        const checked = await checkPin({ username, pinHash, pin: body.pin, where: { source: 'activation', familiar: false } }, now, deps.access());
        if (!checked.ok) throw new ApiError('WRONG_PIN', WRONG_PIN_AT_ACTIVATION);
      }
      // No PIN yet: this one becomes it, unless another activation set one while this one hashed (one step).
      if (body.pin !== undefined && pinHash === null && config.mfa.push.pin !== 'off') {
        if (!(await deps.store.setPinHashIfUnset(username, await hashPassword(body.pin)))) throw new ApiError('WRONG_PIN', WRONG_PIN_AT_ACTIVATION);
      }

      const deviceId = randomBytes(12).toString('base64url');
      const token = newDeviceToken();
      await deps.store.devices.add({ id: deviceId, username, name: body.device_name, publicKey: publicKey.der, tokenHash: hashSecretToken(token), pushToken });

      let totp: TotpEnrollment | null = null;
      if (activation.withTotp) {
        totp = startEnrollment(deps.access().settings);
        await deps.state.putEnrollment(pendingEnrollmentKey(deviceId), totp, config.mobile_app.activation_ttl);
      }
      deps.logger.info({ audit: true, event: 'device_activated', user: username, device: deviceId, device_name: body.device_name, src: request.ip, with_totp: totp !== null }, 'device activated');
      return reply.status(201).send({
        device_id: deviceId,
        device_token: token,
        account_name: config.mobile_app.account_name,
        username,
        ...(totp ? { totp: { secret: secretText(totp), digits: totp.digits, period: totp.period, algorithm: totp.algorithm } } : {}),
      });
    },
  );
}

/** Where an activation's TOTP secret waits for the app to confirm it. */
export function pendingEnrollmentKey(deviceId: string): string {
  return `enroll:${deviceId}`;
}
