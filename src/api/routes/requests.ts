// What a device sees and answers: the pending sign-in requests of its user.
import type { FastifyInstance } from 'fastify';
import { checkPin } from '../../flow/pin.js';
import type { PendingPush, PushAnswer } from '../../mfa/pending.js';
import { answerSigningInput, verifyDeviceSignature } from '../../mfa/signature.js';
import type { DeviceRecord } from '../../store/store.js';
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
      if (push.outcome) throw new ApiError(push.outcome.kind === 'timeout' ? 'REQUEST_EXPIRED' : 'ALREADY_ANSWERED');
      if (decision === 'approve' && push.pinRequired) await requirePin(push, device, pin, deps);

      // One answer per push across every node: decide is atomic, and tells the node that holds the request.
      if (!(await deps.pending.decide(id, { kind: decision, deviceId: device.id }))) {
        throw new ApiError((await deps.pending.get(id))?.outcome?.kind === 'timeout' ? 'REQUEST_EXPIRED' : 'ALREADY_ANSWERED');
      }
      deps.logger.info({ audit: true, event: 'push_answer', request: id, device: device.id, user: device.username, client: push.clientName, decision }, 'push answered');
      if (decision === 'fraud') await reportFraud(push, device, deps);
      return { status: decision === 'approve' ? 'approved' : decision === 'deny' ? 'denied' : 'fraud_reported' };
    },
  );
}

/** A wrong PIN counts toward lockout; reaching it ends the request as locked. */
async function requirePin(push: PendingPush, device: DeviceRecord, pin: string | undefined, deps: HttpDeps): Promise<void> {
  if (pin === undefined) throw new ApiError('PIN_REQUIRED');
  const user = await deps.store.getUser(push.username);
  if (!user?.pinHash) throw new ApiError('PIN_NOT_SET');
  // A phone in a stranger's hand must not guess PINs without end: its failures count toward the user's lock.
  const checked = await checkPin(push.username, user.pinHash, pin, { source: 'phone', familiar: false }, deps.now(), { config: deps.config(), state: deps.state, store: deps.store });
  if (checked.ok) return;
  const locked = checked.locked;
  deps.logger.warn({ audit: true, event: 'push_answer_refused', reason: 'wrong_pin', request: push.id, device: device.id, user: push.username, locked }, 'wrong PIN on push approval');
  if (locked) await deps.pending.decide(push.id, { kind: 'locked', deviceId: device.id });
  throw new ApiError('WRONG_PIN', locked ? 'Wrong PIN: too many failures, the account is now locked.' : undefined);
}

/** "This wasn't me": the request is rejected (by the decision above), the user locked until an admin unlocks, an alert logged. */
async function reportFraud(push: PendingPush, device: DeviceRecord, deps: HttpDeps): Promise<void> {
  await deps.store.lockUser(push.username, Number.MAX_SAFE_INTEGER, `fraud reported from device ${device.id} (${device.name})`);
  deps.logger.error(
    { audit: true, alert: 'fraud', event: 'fraud_reported', request: push.id, device: device.id, user: push.username, client: push.clientName, nas_ip: push.nasIp, calling_station: push.callingStation },
    'FRAUD ALERT: the user reported a sign-in request as not theirs; the account is locked until `radius-mfa user unlock`',
  );
}
