// POST /api/v1/activation: a one-time activation code + the device's public key -> device id and token.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { generateSecret, ScureBase32Plugin } from 'otplib';
import { hashPassword } from '../../auth/password-hash.js';
import { hashSecretToken, newDeviceToken, normalizeActivationCode } from '../../mfa/activation.js';
import { normalizePushToken } from '../../mfa/push-token.js';
import { parseDevicePublicKey } from '../../mfa/signature.js';
import type { TotpEnrollment } from '../../store/store.js';
import { ApiError, errorBodySchema } from '../errors.js';
import type { ApiDeps } from '../server.js';

interface ActivationBody {
  activation_code: string;
  device_name: string;
  public_key: string;
  push_token?: string;
  pin?: string;
}

const MAX_ATTEMPTS_PER_ADDRESS = 10;
const ATTEMPT_WINDOW_MS = 10 * 60_000;

export function activationRoutes(api: FastifyInstance, deps: ApiDeps): void {
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
            pin: { type: 'string', pattern: '^[0-9]{4,12}$', description: 'Sets the account PIN (required when mfa.push.pin is "required").' },
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
      if ((await deps.state.increment(`activation:${request.ip}`, ATTEMPT_WINDOW_MS)) > MAX_ATTEMPTS_PER_ADDRESS) throw new ApiError('RATE_LIMITED');
      const publicKey = parseDevicePublicKey(body.public_key);
      if (!publicKey) throw new ApiError('INVALID_PUBLIC_KEY');
      const pushToken = body.push_token === undefined ? null : normalizePushToken(body.push_token, config.mobile_app.web_push?.push_services);
      if (pushToken === undefined) throw new ApiError('INVALID_PUSH_TOKEN');
      if (config.mfa.push.pin === 'required' && body.pin === undefined) throw new ApiError('PIN_REQUIRED');

      const now = deps.now();
      const activation = await deps.store.devices.consumeActivation(hashSecretToken(normalizeActivationCode(body.activation_code)), now);
      if (!activation) throw new ApiError('ACTIVATION_INVALID');
      const { username } = activation;

      const deviceId = randomBytes(12).toString('base64url');
      const token = newDeviceToken();
      await deps.store.devices.add({ id: deviceId, username, name: body.device_name, publicKey: publicKey.der, tokenHash: hashSecretToken(token), pushToken });
      if (body.pin !== undefined && config.mfa.push.pin !== 'off') await deps.store.setPinHash(username, await hashPassword(body.pin));

      let totp: TotpEnrollment | null = null;
      if (activation.withTotp) totp = await appManagedTotp(username, deps);
      deps.logger.info({ audit: true, event: 'device_activated', user: username, device: deviceId, device_name: body.device_name, src: request.ip, with_totp: totp !== null }, 'device activated');
      return reply.status(201).send({
        device_id: deviceId,
        device_token: token,
        account_name: config.mobile_app.account_name,
        username,
        ...(totp ? { totp: { secret: new ScureBase32Plugin().encode(totp.secret), digits: totp.digits, period: totp.period, algorithm: totp.algorithm } } : {}),
      });
    },
  );
}

/** The app becomes (one of) the user's OATH tokens: the existing secret, or a new one if none is enrolled. */
async function appManagedTotp(username: string, deps: ApiDeps): Promise<TotpEnrollment> {
  const user = await deps.store.getUser(username);
  if (user?.totp) return user.totp;
  const settings = deps.config().mfa.totp;
  const enrollment: TotpEnrollment = {
    secret: Buffer.from(new ScureBase32Plugin().decode(generateSecret())),
    algorithm: settings.algorithm,
    digits: settings.digits,
    period: settings.period,
  };
  await deps.store.setTotp(username, enrollment);
  return enrollment;
}
