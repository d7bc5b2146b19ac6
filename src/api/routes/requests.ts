// What a device sees and answers: the pending sign-in requests of its user.
import type { FastifyInstance } from 'fastify';
import { answerPush } from '../../flow/second-factor.js';
import type { PendingPush, PushAnswer } from '../../mfa/pending.js';
import { answerSigningInput, verifyDeviceSignature } from '../../mfa/signature.js';
import { ApiError, errorBodySchema } from '../errors.js';
import type { HttpDeps } from '../../http/deps.js';
import { deviceOf } from '../device-auth.js';

const pendingItemSchema = {
  type: 'object',
  required: ['id', 'username', 'client', 'time', 'expires', 'pin_required'],
  properties: {
    id: { type: 'string' },
    username: { type: 'string' },
    client: { type: 'string', description: 'The VPN (RADIUS client name).' },
    nas_ip: { type: 'string' },
    nas_identifier: { type: 'string' },
    calling_station: { type: 'string', description: "The user's address as the VPN saw it." },
    time: { type: 'string', format: 'date-time' },
    expires: { type: 'string', format: 'date-time' },
    pin_required: { type: 'boolean' },
    number: { type: 'string', description: 'Present only with number matching: show it; the user types it at the VPN.' },
  },
} as const;

function view(p: PendingPush) {
  return {
    id: p.id,
    username: p.username,
    client: p.clientName,
    nas_ip: p.nasIp,
    nas_identifier: p.nasIdentifier,
    calling_station: p.callingStation,
    time: new Date(p.createdAt).toISOString(),
    expires: new Date(p.expires).toISOString(),
    pin_required: p.pinRequired,
    number: p.number,
  };
}

interface AnswerBody {
  decision: PushAnswer;
  pin?: string;
  signature: string;
}

export function requestRoutes(api: FastifyInstance, deps: HttpDeps): void {
  api.get(
    '/pending',
    {
      schema: {
        summary: "This device's user's pending sign-in requests, oldest first",
        security: [{ device: [] }],
        response: { 200: { type: 'array', items: pendingItemSchema }, '4xx': errorBodySchema },
      },
    },
    async (request) => {
      const device = deviceOf(request);
      return (await deps.pending.openFor(device.username)).map(view);
    },
  );

  api.post<{ Params: { id: string }; Body: AnswerBody }>(
    '/requests/:id/answer',
    {
      schema: {
        summary: 'Approve, deny or report a request as fraud, signed with the device key',
        security: [{ device: [] }],
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['decision', 'signature'],
          properties: {
            decision: { type: 'string', enum: ['approve', 'deny', 'fraud'] },
            pin: { type: 'string', maxLength: 12 },
            signature: { type: 'string', maxLength: 200, description: 'base64 ECDSA P-256/SHA-256, IEEE P1363 (r||s, 64 bytes), over the UTF-8 string "{id}.{decision}".' },
          },
        },
        response: {
          200: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['approved', 'denied', 'fraud_reported'] } } },
          '4xx': errorBodySchema,
        },
      },
    },
    async (request) => {
      const device = deviceOf(request);
      const { id } = request.params;
      const { decision, pin, signature } = request.body;
      const push = await deps.pending.get(id);
      if (!push) throw new ApiError('REQUEST_NOT_FOUND');
      if (push.username !== device.username) throw new ApiError('NOT_YOUR_REQUEST');
      if (!verifyDeviceSignature(device.publicKey, answerSigningInput(id, decision), signature)) {
        deps.logger.warn({ audit: true, event: 'push_answer_refused', reason: 'bad_signature', request: id, device: device.id, user: device.username }, 'push answer with a bad signature refused');
        throw new ApiError('BAD_SIGNATURE');
      }
      const answered = await answerPush({ push, device, answer: decision, pin }, deps.now(), deps.access());
      if (!answered.ok) {
        if (answered.reason === 'wrong_pin') {
          const { locked } = answered;
          deps.logger.warn({ audit: true, event: 'push_answer_refused', reason: 'wrong_pin', request: id, device: device.id, user: push.username, locked }, 'wrong PIN on push approval');
          throw new ApiError('WRONG_PIN', locked ? 'Wrong PIN: too many failures, the account is now locked.' : undefined);
        }
        throw new ApiError(REFUSAL_CODES[answered.reason]);
      }
      deps.logger.info({ audit: true, event: 'push_answer', request: id, device: device.id, user: device.username, client: push.clientName, decision }, 'push answered');
      if (decision === 'fraud') {
        // The service locked the user until an admin unlocks; the alert is the operator's.
        deps.logger.error(
          { audit: true, alert: 'fraud', event: 'fraud_reported', request: push.id, device: device.id, user: push.username, client: push.clientName, nas_ip: push.nasIp, calling_station: push.callingStation },
          'FRAUD ALERT: the user reported a sign-in request as not theirs; the account is locked until `radius-mfa user unlock`',
        );
      }
      return { status: decision === 'approve' ? 'approved' : decision === 'deny' ? 'denied' : 'fraud_reported' };
    },
  );
}

const REFUSAL_CODES = { expired: 'REQUEST_EXPIRED', already_answered: 'ALREADY_ANSWERED', pin_required: 'PIN_REQUIRED', pin_not_set: 'PIN_NOT_SET' } as const;
