// Device authentication for the Mobile App API, as one preHandler hook: a route whose schema names the
// `device` security scheme (the same line that documents it in openapi.json) gets the bearer token's device.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { hashSecretToken } from '../mfa/activation.js';
import type { DeviceRecord } from '../store/store.js';
import type { HttpDeps } from '../http/deps.js';
import { ApiError } from './errors.js';

const LAST_SEEN_PRECISION_MS = 60_000;

const devices = new WeakMap<FastifyRequest, DeviceRecord>();

/** Runs after body validation (as the handlers' own check did), so a bad body still answers 400 first. */
export function addDeviceAuthHook(api: FastifyInstance, deps: HttpDeps): void {
  api.addHook('preHandler', async (request) => {
    const security = (request.routeOptions.schema as { security?: Record<string, unknown>[] } | undefined)?.security;
    if (!security?.some((s) => 'device' in s)) return;
    devices.set(request, await authenticateDevice(request, deps));
  });
}

/** The device the hook authenticated for this request. */
export function deviceOf(request: FastifyRequest): DeviceRecord {
  const device = devices.get(request);
  if (!device) throw new Error('bug: device route without security: [{ device: [] }] in its schema');
  return device;
}

/** The device that owns the bearer token, or a 401. */
async function authenticateDevice(request: FastifyRequest, deps: HttpDeps): Promise<DeviceRecord> {
  const header = request.headers.authorization ?? '';
  const token = /^Bearer ([A-Za-z0-9_-]{20,200})$/.exec(header)?.[1];
  const device = token ? await deps.store.devices.byTokenHash(hashSecretToken(token)) : undefined;
  if (!device) throw new ApiError('UNAUTHORIZED');
  // last_seen_at is for admins ("is this phone still used?"): a minute's precision spares a write per poll.
  const now = deps.now();
  if (device.lastSeenAt === null || now - device.lastSeenAt >= LAST_SEEN_PRECISION_MS) await deps.store.devices.touch(device.id, now);
  return device;
}
