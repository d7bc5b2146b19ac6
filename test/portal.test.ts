// The self-service portal in real headless Chromium, and its server-side rules over plain HTTP
// (switches, CSRF, lockout shared with RADIUS, session expiry), against a real server on loopback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { ScureBase32Plugin } from 'otplib';
import { createActivation } from '../src/mfa/activation.js';
import { hashPassword } from '../src/auth/password-hash.js';
import { lockoutView } from '../src/flow/lockout.js';
import { launchBrowser, phoneContext, screenshot, watchErrors } from './helpers/browser.js';
import { SimulatedPhone } from './helpers/phone.js';
import { PortalClient } from './helpers/portal-client.js';
import { radclient } from './helpers/radclient.js';
import { codeAt, enrollTotp, startTestServer, wrongCodeAt, type StartOptions } from './helpers/server.js';

let browser: Browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

async function portalServer(config: Record<string, unknown> = {}, opts: Omit<StartOptions, 'config'> = {}) {
  const server = await startTestServer({ ...opts, config: { http: { listen: '127.0.0.1:0' }, mobile_app: { account_name: 'Contoso VPN' }, ...config } });
  return { server, base: `http://127.0.0.1:${server.httpPort}` };
}

/** A browser tab on the portal; closed with the test. */
async function openPortal(t: { after: (fn: () => Promise<void>) => void }, base: string): Promise<{ page: Page; errors: string[] }> {
  const context = await phoneContext(browser);
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(`${base}/portal/`);
  return { page, errors };
}

async function signInWithPassword(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const base32 = new ScureBase32Plugin();

test('signs in with password + TOTP in the browser; a wrong code is refused with a clear text; sign-out ends the session', async (t) => {
  const { server, base } = await portalServer();
  t.after(() => server.close());
  const alice = await enrollTotp(server.store, 'alice', { password: 'correct horse' });
  const { page, errors } = await openPortal(t, base);

  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.match(page.url(), /\/portal\/sign-in$/);
  await screenshot(page, 'portal-sign-in');
  await signInWithPassword(page, 'alice', 'not the password');
  await page.getByRole('alert').filter({ hasText: 'Wrong username, password or code.' }).waitFor();

  await signInWithPassword(page, 'alice', 'correct horse');
  const code = page.getByLabel('Code from your authenticator app');
  await code.fill(wrongCodeAt(alice, server.clock.now()));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong code' }).waitFor();
  await code.fill(alice.codeAt(server.clock.now()));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('heading', { name: 'Your sign-in settings' }).waitFor();
  await page.getByText('An authenticator app is set up.').waitFor();

  const cookie = (await page.context().cookies()).find((c) => c.name === 'rmfa_portal');
  assert.equal(cookie?.httpOnly, true);
  assert.equal(cookie?.sameSite, 'Strict');
  assert.equal(cookie?.secure, false, 'plain HTTP on loopback: Secure is set only over HTTPS');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByText('You are signed out.').waitFor();
  await page.goto(`${base}/portal/`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  const signIns = server.logs.filter({ event: 'portal_sign_in' }).map((r) => `${r.result}:${r.reason}`);
  assert.deepEqual(signIns, ['reject:bad_password', 'reject:bad_code', 'accept:totp']);
  assert.deepEqual(errors, []);
});

test('a new user enrolls TOTP: the secret is read from the page, one code confirms it, then the VPN accepts password + code', async (t) => {
  const { server, base } = await portalServer({ mfa: { totp: { issuer: 'Contoso VPN' } } });
  t.after(() => server.close());
  await server.store.addUser({ username: 'bob', passwordHash: await hashPassword('bob-pw') });
  const { page, errors } = await openPortal(t, base);

  await signInWithPassword(page, 'bob', 'bob-pw');
  await page.getByText('No authenticator app is set up.').waitFor();
  await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
  await page.getByRole('heading', { name: 'Set up an authenticator app' }).waitFor();
  await screenshot(page, 'portal-enroll-totp');
  assert.equal(await page.locator('figure.qr svg').count(), 1, 'the QR code is on the page');
  const uri = await page.getByRole('link', { name: 'Open in an authenticator app on this device' }).getAttribute('href');
  assert.match(uri!, /^otpauth:\/\/totp\/Contoso%20VPN:bob\?.*issuer=Contoso%20VPN/);
  const secretText = (await page.locator('#totp-secret').textContent())!.replace(/\s/g, '');
  assert.match(uri!, new RegExp(`secret=${secretText}`));
  const secret = Buffer.from(base32.decode(secretText));

  // Not stored before a code confirms it.
  assert.equal((await server.store.getUser('bob'))?.totp, null);
  await page.getByLabel('Code from the app').fill(codeAt(secret, server.clock.now() + 10 * 60_000));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('alert').filter({ hasText: 'That code does not match' }).waitFor();
  assert.equal((await server.store.getUser('bob'))?.totp, null);
  await page.getByLabel('Code from the app').fill(codeAt(secret, server.clock.now()));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('status').filter({ hasText: 'Your authenticator app is set up.' }).waitFor();
  assert.deepEqual((await server.store.getUser('bob'))?.totp?.secret, secret);

  // The confirming code was claimed: the VPN takes the next one.
  const replay = await radclient({ 'User-Name': 'bob', 'User-Password': `bob-pw${codeAt(secret, server.clock.now())}` }, { port: server.authPort, secret: server.secret });
  assert.equal(replay.code, 'Access-Reject');
  server.clock.advance(30_000);
  const vpn = await radclient({ 'User-Name': 'bob', 'User-Password': `bob-pw${codeAt(secret, server.clock.now())}` }, { port: server.authPort, secret: server.secret });
  assert.equal(vpn.code, 'Access-Accept');
  assert.deepEqual(errors, []);
});

test('re-enrollment keeps the old secret until the new one is confirmed', async (t) => {
  const { server, base } = await portalServer();
  t.after(() => server.close());
  const carol = await enrollTotp(server.store, 'carol', { password: 'carol-pw' });
  const client = new PortalClient(base);
  await client.signIn('carol', 'carol-pw', carol.codeAt(server.clock.now()));
  assert.equal((await client.post('/portal/totp/start', {})).status, 303);
  const page = await client.get('/portal/totp');
  assert.match(page.text, /Your current authenticator keeps working until you do/);
  const secret = Buffer.from(base32.decode(/id="totp-secret"[^>]*>([^<]+)</.exec(page.text)![1]!.replace(/\s/g, '')));
  assert.deepEqual((await server.store.getUser('carol'))?.totp?.secret, carol.secret, 'old secret still active');
  server.clock.advance(30_000);
  const wrong = await client.post('/portal/totp/confirm', { code: carol.codeAt(server.clock.now()) });
  assert.equal(wrong.status, 400, 'a code of the old secret does not confirm the new one');
  assert.deepEqual((await server.store.getUser('carol'))?.totp?.secret, carol.secret);
  assert.equal((await client.post('/portal/totp/confirm', { code: codeAt(secret, server.clock.now()) })).status, 303);
  assert.deepEqual((await server.store.getUser('carol'))?.totp?.secret, secret);
  assert.equal(server.logs.filter({ event: 'totp_enrolled', user: 'carol' })[0]?.replaced, true);
});

test('each portal switch off: the page hides the action and the server refuses it when posted directly', async (t) => {
  const { server, base } = await portalServer({ portal: { allow_user_enrollment: false, allow_method_selection: false, allow_mobile_app_activation: false } });
  t.after(() => server.close());
  const dave = await enrollTotp(server.store, 'dave', { password: 'dave-pw' });
  await server.store.addUser({ username: 'erin', passwordHash: await hashPassword('erin-pw') });

  const { page } = await openPortal(t, base);
  await signInWithPassword(page, 'dave', 'dave-pw');
  await page.getByLabel('Code from your authenticator app').fill(dave.codeAt(server.clock.now()));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByRole('heading', { name: 'Your sign-in settings' }).waitFor();
  for (const name of ['Replace with a new authenticator', 'Activate the app on a phone', 'Save method']) {
    assert.equal(await page.getByRole('button', { name }).count(), 0, `${name} is hidden`);
  }
  // The same session, with a valid CSRF token, posting what the hidden buttons would.
  const csrf = await page.locator('input[name=_csrf]').first().inputValue();
  const post = (path: string, form: Record<string, string>) => page.request.post(base + path, { form: { _csrf: csrf, ...form }, maxRedirects: 0 });
  const enroll = await post('/portal/totp/start', {});
  assert.equal(enroll.status(), 403);
  assert.match(await enroll.text(), /turned off by your administrator/);
  assert.equal((await post('/portal/totp/confirm', { code: '123456' })).status(), 403);
  assert.equal((await post('/portal/method', { method: 'challenge' })).status(), 403);
  assert.equal((await post('/portal/activation', { with_totp: '1' })).status(), 403);
  const user = await server.store.getUser('dave');
  assert.equal(user?.method, null, 'method unchanged');
  assert.deepEqual(user?.totp?.secret, dave.secret, 'TOTP unchanged');
  assert.equal(server.logs.filter({ event: 'activation_created' }).length, 0);
  assert.deepEqual(server.logs.filter({ event: 'portal_refused' }).map((r) => r.reason), ['allow_user_enrollment', 'allow_user_enrollment', 'allow_method_selection', 'allow_mobile_app_activation']);

  // Without self-enrollment, a user with no second factor cannot use the password alone.
  const erin = new PortalClient(base);
  await erin.get('/portal/sign-in');
  const refused = await erin.post('/portal/sign-in', { username: 'erin', password: 'erin-pw' });
  assert.equal(refused.status, 401);
  assert.match(refused.text, /self-enrollment is turned off/);
  assert.equal((await erin.get('/portal/')).status, 303);
});

test('method selection when allowed: saves an allowed method the user can use, refuses the others', async (t) => {
  const { server, base } = await portalServer({ portal: { allow_method_selection: true, allowed_methods: ['totp', 'challenge', 'push'] } });
  t.after(() => server.close());
  const frank = await enrollTotp(server.store, 'frank', { password: 'frank-pw' });
  const client = new PortalClient(base);
  await client.signIn('frank', 'frank-pw', frank.codeAt(server.clock.now()));
  assert.equal((await client.post('/portal/method', { method: 'challenge' })).status, 303);
  assert.equal((await server.store.getUser('frank'))?.method, 'challenge');
  const push = await client.post('/portal/method', { method: 'push' });
  assert.equal(push.status, 400);
  assert.match(push.text, /Activate the app on a phone first/);
  assert.equal((await client.post('/portal/method', { method: 'none' })).status, 400);
  assert.equal((await server.store.getUser('frank'))?.method, 'challenge');
});

test('a form without its CSRF token (or with another session\'s) is refused and changes nothing', async (t) => {
  const { server, base } = await portalServer();
  t.after(() => server.close());
  const gina = await enrollTotp(server.store, 'gina', { password: 'gina-pw' });
  const client = new PortalClient(base);
  await client.get('/portal/sign-in');
  const noTokenSignIn = await client.post('/portal/sign-in', { username: 'gina', password: 'gina-pw' }, { csrf: null });
  assert.equal(noTokenSignIn.status, 403);
  assert.match(noTokenSignIn.text, /Nothing was changed/);
  await client.signIn('gina', 'gina-pw', gina.codeAt(server.clock.now()));

  const other = new PortalClient(base);
  await other.get('/portal/sign-in');
  for (const csrf of [null, '', other.csrf, 'x'.repeat(32)]) {
    assert.equal((await client.post('/portal/activation', { with_totp: '1' }, { csrf })).status, 403, `csrf ${csrf}`);
    assert.equal((await client.post('/portal/totp/start', {}, { csrf })).status, 403);
  }
  assert.equal(server.logs.filter({ event: 'activation_created' }).length, 0);
  // The session itself is still good: the real token works.
  assert.equal((await client.post('/portal/activation', { with_totp: '1' })).status, 200);
});

test('lockout is shared with RADIUS: failures at the VPN and in the portal add up, and the lock applies to both', async (t) => {
  const { server, base } = await portalServer({ mfa: { lockout: { max_failures: 3, duration: '15m' } } });
  t.after(() => server.close());
  const hal = await enrollTotp(server.store, 'hal', { password: 'hal-pw' });
  for (let i = 0; i < 2; i++) {
    const r = await radclient({ 'User-Name': 'hal', 'User-Password': `wrong${i}${hal.codeAt(server.clock.now())}` }, { port: server.authPort, secret: server.secret });
    assert.equal(r.code, 'Access-Reject');
  }
  const client = new PortalClient(base);
  await client.get('/portal/sign-in');
  const third = await client.post('/portal/sign-in', { username: 'hal', password: 'wrong' });
  assert.equal(third.status, 401);
  assert.equal((await server.store.getUser('hal'))?.lockReason, '3 failed attempts from 127.0.0.1 (last: bad_password)');
  // Before the password has passed, a locked account reads like a wrong password (no state oracle).
  const right = await client.post('/portal/sign-in', { username: 'hal', password: 'hal-pw' });
  assert.equal(right.status, 401, 'the right password does not get past the lock');
  assert.match(right.text, /Wrong username, password or code/);
  assert.equal(server.logs.filter({ event: 'portal_sign_in', user: 'hal', reason: 'locked' }).length, 1);
  const vpn = await radclient({ 'User-Name': 'hal', 'User-Password': `hal-pw${hal.codeAt(server.clock.now())}` }, { port: server.authPort, secret: server.secret });
  assert.equal(vpn.code, 'Access-Reject');
  assert.equal(server.logs.audits('hal').at(-1)?.reason, 'locked');
});

test('sign-in attempts are rate limited per address', async (t) => {
  const { server, base } = await portalServer({ mfa: { lockout: { max_failures: 0 } } });
  t.after(() => server.close());
  const client = new PortalClient(base);
  await client.get('/portal/sign-in');
  const statuses: number[] = [];
  for (let i = 0; i < 21; i++) statuses.push((await client.post('/portal/sign-in', { username: `user${i}`, password: 'guess' })).status);
  assert.deepEqual(statuses.slice(0, 20), Array(20).fill(401));
  assert.equal(statuses[20], 429);
});

test('a session ends after portal.session_ttl without a request, and after portal.session_max in any case', async (t) => {
  const { server, base } = await portalServer({ portal: { session_ttl: '10m', session_max: '30m' } });
  t.after(() => server.close());
  const ivy = await enrollTotp(server.store, 'ivy', { password: 'ivy-pw' });
  const client = new PortalClient(base);
  await client.signIn('ivy', 'ivy-pw', ivy.codeAt(server.clock.now()));
  server.clock.advance(9 * 60_000);
  assert.equal((await client.get('/portal/')).status, 200, 'still active after 9 idle minutes');
  server.clock.advance(9 * 60_000);
  assert.equal((await client.get('/portal/')).status, 200);
  server.clock.advance(10 * 60_000 + 1);
  assert.equal((await client.get('/portal/')).location, '/portal/sign-in', 'idle too long');

  server.clock.advance(60_000);
  await client.signIn('ivy', 'ivy-pw', ivy.codeAt(server.clock.now()));
  for (let i = 0; i < 3; i++) {
    server.clock.advance(9 * 60_000);
    assert.equal((await client.get('/portal/')).status, 200);
  }
  server.clock.advance(4 * 60_000);
  assert.equal((await client.get('/portal/')).location, '/portal/sign-in', 'older than session_max');
});

test('push sign-in: the phone approves and the waiting page continues by itself; devices are listed and removed; the PIN is set and changed', async (t) => {
  const { server, base } = await portalServer({ mfa: { push: { pin: 'optional', timeout: '20s' } } });
  t.after(() => server.close());
  await server.store.addUser({ username: 'jo', passwordHash: await hashPassword('jo-pw') });
  const activation = await createActivation(server.store, server.config, 'jo', server.clock.now());
  const phone = await SimulatedPhone.activate(base, activation.activation_code, { name: 'Jo\'s phone' });

  const { page, errors } = await openPortal(t, base);
  await signInWithPassword(page, 'jo', 'jo-pw');
  await page.getByText('A sign-in request was sent to your phone.').waitFor();
  const request = await phone.waitForPending();
  assert.equal(request.client, 'portal');
  assert.equal(request.calling_station, '127.0.0.1');
  assert.equal((await phone.answer(request.id, 'approve')).status, 200);
  await page.getByRole('heading', { name: 'Your sign-in settings' }).waitFor();
  await page.getByText('Jo\'s phone').waitFor();

  await page.getByLabel('New PIN (4 to 12 digits)').fill('2468');
  await page.getByLabel('New PIN again').fill('2468');
  await page.getByRole('button', { name: 'Set PIN' }).click();
  await page.getByText('Your PIN is set.').waitFor();
  await page.getByLabel('Current PIN').fill('0000');
  await page.getByLabel('New PIN (4 to 12 digits)').fill('1357');
  await page.getByLabel('New PIN again').fill('1357');
  await page.getByRole('button', { name: 'Change PIN' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong current PIN.' }).waitFor();
  await page.goto(`${base}/portal/`);
  await page.getByLabel('Current PIN').fill('2468');
  await page.getByLabel('New PIN (4 to 12 digits)').fill('1357');
  await page.getByLabel('New PIN again').fill('1357');
  await page.getByRole('button', { name: 'Change PIN' }).click();
  await page.getByText('Your PIN is changed.').waitFor();

  await page.getByRole('button', { name: 'Remove Jo\'s phone' }).click();
  await page.getByText('Jo\'s phone was removed.').waitFor();
  assert.deepEqual(await server.store.devices.list('jo'), []);
  assert.equal((await phone.pending()).status, 401, 'the removed phone is no longer accepted');
  assert.deepEqual(errors, []);
});

test('a device of another user cannot be removed through the portal', async (t) => {
  const { server, base } = await portalServer();
  t.after(() => server.close());
  const kim = await enrollTotp(server.store, 'kim', { password: 'kim-pw' });
  await enrollTotp(server.store, 'lee', { password: 'lee-pw' });
  const phone = await SimulatedPhone.activate(base, (await createActivation(server.store, server.config, 'lee', server.clock.now())).activation_code);
  const client = new PortalClient(base);
  await client.signIn('kim', 'kim-pw', kim.codeAt(server.clock.now()));
  assert.equal((await client.post(`/portal/devices/${phone.deviceId}/remove`, {})).status, 404);
  assert.equal((await server.store.devices.list('lee')).length, 1);
});


test('push sign-in with number matching: approved on the phone, then the number the app shows; a wrong number is refused and counts as a failure', async (t) => {
  const { server, base } = await portalServer({ mfa: { push: { number_matching: true, timeout: '20s' } } });
  t.after(() => server.close());
  await server.store.addUser({ username: 'max', passwordHash: await hashPassword('max-pw') });
  const phone = await SimulatedPhone.activate(base, (await createActivation(server.store, server.config, 'max', server.clock.now())).activation_code);

  for (const right of [false, true]) {
    const client = new PortalClient(base);
    await client.get('/portal/sign-in');
    assert.equal((await client.post('/portal/sign-in', { username: 'max', password: 'max-pw' })).status, 303);
    assert.match((await client.get('/portal/sign-in')).text, /Number shown in the app/);
    const early = await client.post('/portal/sign-in/push/complete', { number: '10' });
    assert.equal(early.status, 202, 'not approved yet: nothing decided');
    const request = await phone.waitForPending();
    assert.match(request.number!, /^\d{2}$/);
    await phone.answer(request.id, 'approve');
    const typed = right ? request.number! : String(((Number(request.number) - 10 + 1) % 90) + 10);
    const done = await client.post('/portal/sign-in/push/complete', { number: typed });
    if (right) {
      assert.equal(done.status, 303);
      assert.equal((await client.get('/portal/')).status, 200);
    } else {
      assert.equal(done.status, 401);
      assert.match(done.text, /does not match the one shown in the app/);
      assert.equal((await client.get('/portal/')).status, 303, 'not signed in');
      // The lockout counter RADIUS uses: the mismatch was one failure, from a source max never signed in from.
      assert.deepEqual((await lockoutView('max', server)).failures.map((f) => [f.source, f.count]), [[null, 1]]);
    }
  }
  assert.deepEqual(server.logs.filter({ event: 'portal_sign_in' }).map((r) => `${r.result}:${r.reason}`), ['reject:number_mismatch', 'accept:push']);
});

test('over HTTPS (a TLS proxy in front) the cookies are Secure with the __Host- prefix; a visitor gets no session until the password passes', async (t) => {
  const { server, base } = await portalServer();
  t.after(() => server.close());
  await enrollTotp(server.store, 'ken', { password: 'ken-pw' });
  const https = { 'x-forwarded-proto': 'https' };
  const r = await fetch(`${base}/portal/sign-in`, { headers: https });
  // Only the visitor's CSRF token: nothing is stored for a visitor, so a flood of them evicts nobody.
  assert.deepEqual(
    r.headers.getSetCookie().map((c) => c.replace(/=[A-Za-z0-9_-]+;/, '=…;')),
    ['__Host-rmfa_csrf=…; Path=/; HttpOnly; SameSite=Strict; Secure'],
  );
  assert.match(r.headers.get('content-security-policy')!, /frame-ancestors 'none'/);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await r.text())![1]!;
  const cookie = r.headers.getSetCookie()[0]!.split(';')[0]!;
  const wrong = await fetch(`${base}/portal/sign-in`, { method: 'POST', redirect: 'manual', headers: { ...https, cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, username: 'ken', password: 'nope' }) });
  assert.equal(wrong.status, 401);
  assert.deepEqual(wrong.headers.getSetCookie(), [], 'a wrong password starts no session');
  const right = await fetch(`${base}/portal/sign-in`, { method: 'POST', redirect: 'manual', headers: { ...https, cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, username: 'ken', password: 'ken-pw' }) });
  assert.equal(right.status, 303);
  assert.match(right.headers.getSetCookie().join('\n'), /^__Host-rmfa_portal=[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Strict; Secure$/m);
});
