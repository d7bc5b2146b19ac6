// The signed-in user's own settings: TOTP enrollment, method, app activation, devices, PIN.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import QRCode from 'qrcode';
import { hashPassword } from '../auth/password-hash.js';
import type { Method } from '../config/schema.js';
import { whereFrom } from '../flow/lockout.js';
import { checkPin, confirmEnrollment, ensureUser, startEnrollment } from '../flow/second-factor.js';
import { createActivation, normalizeActivationCode } from '../mfa/activation.js';
import { otpauthUri, secretText, type TotpEnrollment } from '../mfa/enrollment.js';
import { field, redirectWith, refuseUnlessAllowed, sendPage, sessionOf, signedInUser, type PortalDeps } from './context.js';
import { accountPage, activationPage, messagePage, totpEnrollPage } from './views.js';

export function accountRoutes(portal: FastifyInstance, deps: PortalDeps): void {
  portal.get('/', async (request, reply) => {
    const username = signedInUser(reply, request, deps);
    if (!username) return reply;
    const config = deps.config();
    const user = await deps.store.getUser(username);
    const profile = deps.access().policy.profileOf(username, user);
    return sendPage(reply, request, deps, {
      title: 'Your sign-in settings',
      body: accountPage({
        csrf: sessionOf(request).csrf,
        username,
        method: profile.method,
        methodSource: profile.source,
        totpEnrolled: user?.totp != null,
        devices: await deps.store.devices.list(username),
        pin: config.mfa.push.pin,
        pinSet: user?.pinHash != null,
        allowEnrollment: config.portal.allow_user_enrollment,
        allowMethodSelection: config.portal.allow_method_selection,
        allowActivation: config.portal.allow_mobile_app_activation,
        allowedMethods: config.portal.allowed_methods,
      }),
    });
  });

  portal.post('/totp/start', async (request, reply) => {
    const username = signedInUser(reply, request, deps);
    if (!username || refuseUnlessAllowed('allow_user_enrollment', reply, request, deps)) return reply;
    sessionOf(request).enrollment = startEnrollment(deps.access().settings);
    return reply.redirect('/portal/totp', 303);
  });

  portal.get('/totp', async (request, reply) => {
    const username = signedInUser(reply, request, deps);
    if (!username) return reply;
    const enrollment = sessionOf(request).enrollment;
    if (!enrollment) return reply.redirect('/portal/', 303);
    return sendPage(reply, request, deps, { title: 'Set up an authenticator app', body: await enrollView(request, deps, username, enrollment) });
  });

  portal.post('/totp/confirm', async (request, reply) => {
    const username = signedInUser(reply, request, deps);
    if (!username || refuseUnlessAllowed('allow_user_enrollment', reply, request, deps)) return reply;
    const session = sessionOf(request);
    if (!session.enrollment) return redirectWith(reply, request, '/portal/', { kind: 'error', text: 'Start the setup again.' });
    const confirmed = await confirmEnrollment({ username, enrollment: session.enrollment, code: field(request.body, 'code', 16) }, deps.now(), deps.access());
    if (!confirmed.ok) {
      const body = await enrollView(request, deps, username, session.enrollment);
      return sendPage(reply, request, deps, { title: 'Set up an authenticator app', status: 400, body, message: { kind: 'error', text: 'That code does not match. Check that the app added the account, and type the code it shows now.' } });
    }
    const replaced = confirmed.replaced;
    session.enrollment = undefined;
    deps.logger.info({ audit: true, event: 'totp_enrolled', user: username, by: 'portal', replaced, src: request.ip }, 'TOTP enrolled in the portal');
    return redirectWith(reply, request, '/portal/', { kind: 'ok', text: replaced ? 'The new authenticator is set up; the old one no longer works.' : 'Your authenticator app is set up.' });
  });

  portal.post('/method', async (request, reply) => {
    const username = signedInUser(reply, request, deps);
    if (!username || refuseUnlessAllowed('allow_method_selection', reply, request, deps)) return reply;
    const method = field(request.body, 'method', 16);
    const allowed = deps.config().portal.allowed_methods as readonly string[];
    if (!allowed.includes(method)) return sendPage(reply, request, deps, { title: 'Not available', status: 400, body: messagePage(`Choose one of: ${allowed.join(', ')}.`) });
    const user = await deps.store.getUser(username);
    const hasPhone = (await deps.store.devices.list(username)).length > 0;
    const hasTotp = user?.totp != null;
    const missing = method === 'push' && !hasPhone ? 'Activate the app on a phone first.' : (method === 'totp' || method === 'challenge') && !hasTotp ? 'Set up an authenticator app first.' : method === 'auto' && !hasPhone && !hasTotp ? 'Set up an authenticator app or a phone first.' : undefined;
    if (missing) return sendPage(reply, request, deps, { title: 'Not available', status: 400, body: messagePage(missing) });
    await ensureUser(deps.store, username);
    await deps.store.setMethod(username, method as Method);
    deps.logger.info({ audit: true, event: 'method_changed', user: username, method, by: 'portal', src: request.ip }, 'method chosen in the portal');
    return redirectWith(reply, request, '/portal/', { kind: 'ok', text: 'Your sign-in method is saved.' });
  });

  portal.post('/activation', async (request, reply) => {
    const username = signedInUser(reply, request, deps);
    if (!username || refuseUnlessAllowed('allow_mobile_app_activation', reply, request, deps)) return reply;
    const config = deps.config();
    await ensureUser(deps.store, username);
    // The app gets a new TOTP secret (never the existing one), confirmed by the app: an enrollment, under its switch.
    const withTotp = field(request.body, 'with_totp') === '1' && config.portal.allow_user_enrollment;
    const activation = await createActivation(deps.store, config, username, deps.now(), withTotp);
    // Without mobile_app.public_url, phones are sent where this browser reached us.
    const base = config.mobile_app.public_url ? activation.url : `${request.protocol}://${request.host}`;
    const link = `${base}/app/?activate=${normalizeActivationCode(activation.activation_code)}&account=${encodeURIComponent(activation.account_name)}`;
    deps.logger.info({ audit: true, event: 'activation_created', user: username, by: 'portal', with_totp: withTotp, src: request.ip }, 'activation code created in the portal');
    const svg = await QRCode.toString(link, { type: 'svg', margin: 2, errorCorrectionLevel: 'M' });
    return sendPage(reply, request, deps, { title: 'Activate the app', body: activationPage(svg, activation.activation_code, link, activation.expires, activation.account_name) });
  });

  portal.post<{ Params: { id: string } }>('/devices/:id/remove', async (request, reply) => {
    const username = signedInUser(reply, request, deps);
    if (!username) return reply;
    const device = (await deps.store.devices.list(username)).find((d) => d.id === request.params.id);
    if (!device) return sendPage(reply, request, deps, { title: 'Not found', status: 404, body: messagePage('No such phone on your account.') });
    await deps.store.devices.remove(device.id);
    deps.logger.info({ audit: true, event: 'device_removed', user: username, device: device.id, by: 'portal', src: request.ip }, 'device removed in the portal');
    return redirectWith(reply, request, '/portal/', { kind: 'ok', text: `${device.name} was removed.` });
  });

  portal.post('/pin', async (request, reply) => {
    const username = signedInUser(reply, request, deps);
    if (!username) return reply;
    const config = deps.config();
    if (config.mfa.push.pin === 'off') return sendPage(reply, request, deps, { title: 'Not available', status: 403, body: messagePage('Approval PINs are turned off by your administrator.') });
    const pin = field(request.body, 'pin', 32);
    const fail = (text: string, status = 400) => sendPage(reply, request, deps, { title: 'PIN not changed', status, body: messagePage(text) });
    if (!/^[0-9]{4,12}$/.test(pin)) return fail('The PIN must be 4 to 12 digits.');
    if (pin !== field(request.body, 'pin2', 32)) return fail('The two new PINs differ.');
    const user = await deps.store.getUser(username);
    const where = await whereFrom(username, request.ip, deps.access());
    const current = user?.pinHash ? await checkPin({ username, pinHash: user.pinHash, pin: field(request.body, 'current_pin', 32), where }, deps.now(), deps.access()) : ({ ok: true } as const);
    if (!current.ok) return fail(current.locked ? 'Wrong current PIN: too many failures, the account is now locked.' : 'Wrong current PIN.', 403);
    await ensureUser(deps.store, username);
    await deps.store.setPinHash(username, await hashPassword(pin));
    deps.logger.info({ audit: true, event: 'pin_set', user: username, by: 'portal', changed: user?.pinHash != null, src: request.ip }, 'PIN set in the portal');
    return redirectWith(reply, request, '/portal/', { kind: 'ok', text: user?.pinHash ? 'Your PIN is changed.' : 'Your PIN is set.' });
  });
}

async function enrollView(request: FastifyRequest, deps: PortalDeps, username: string, enrollment: TotpEnrollment) {
  const uri = await otpauthUri(deps.config().mfa.totp.issuer, username, enrollment);
  const svg = await QRCode.toString(uri, { type: 'svg', margin: 2, errorCorrectionLevel: 'M' });
  const replacing = (await deps.store.getUser(username))?.totp != null;
  return totpEnrollPage(sessionOf(request).csrf, svg, secretText(enrollment).replace(/(.{4})(?=.)/g, '$1 '), uri, replacing);
}
