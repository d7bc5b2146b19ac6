// The companion app (/app/) in real headless Chromium: activation from the portal's code, a VPN login
// held by the real radclient and approved / denied / reported in the app, number matching, PIN, and
// offline codes with the network cut.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { hashPassword } from '../src/auth/password-hash.js';
import { createActivation } from '../src/mfa/activation.js';
import { verifyTotp } from '../src/mfa/totp.js';
import { launchBrowser, phoneContext, screenshot, watchErrors } from './helpers/browser.js';
import { radclient } from './helpers/radclient.js';
import { startTestServer, type TestServer } from './helpers/server.js';

let browser: Browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

interface Setup {
  server: TestServer;
  base: string;
}

/** Push users, the app polling; the server clock starts at the real time so the app's countdowns and codes agree with it. */
async function appServer(t: { after: (fn: () => Promise<void>) => void }, push: Record<string, unknown> = {}): Promise<Setup> {
  const server = await startTestServer({
    start: Date.now(),
    config: {
      http: { listen: '127.0.0.1:0' },
      mobile_app: { account_name: 'Contoso VPN' },
      mfa: { default_method: 'push', reject_delay: '0ms', push: { timeout: '30s', ...push } },
    },
  });
  t.after(() => server.close());
  return { server, base: `http://127.0.0.1:${server.httpPort}` };
}

async function newContext(t: { after: (fn: () => Promise<void>) => void }): Promise<BrowserContext> {
  const context = await phoneContext(browser);
  t.after(() => context.close().catch(() => undefined));
  return context;
}

/** As a new user would: sign in to the portal with the password, ask for an activation code; returns the link and the code. */
async function activationFromPortal(t: { after: (fn: () => Promise<void>) => void }, s: Setup, username: string, password: string, shot = false): Promise<{ link: string; code: string }> {
  await s.server.store.addUser({ username, passwordHash: await hashPassword(password) });
  const page = await (await newContext(t)).newPage();
  await page.goto(`${s.base}/portal/`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Activate the app on a phone' }).click();
  await page.getByRole('heading', { name: 'Activate the app' }).waitFor();
  if (shot) await screenshot(page, 'portal-activation');
  const code = (await page.locator('#activation-code').textContent())!;
  const link = (await page.locator('#activation-link').getAttribute('href'))!;
  assert.match(code, /^\d{4}-\d{4}-\d{4}$/);
  assert.equal(link, `${s.base}/app/?activate=${code.replace(/-/g, '')}&account=Contoso%20VPN`);
  assert.equal(await page.locator('figure.qr svg').count(), 1);
  return { link, code };
}

/** The phone: opens the app (by the link, or pasting the code) and activates it. */
async function activateApp(t: { after: (fn: () => Promise<void>) => void }, s: Setup, how: { link: string } | { code: string }, pin?: string): Promise<{ page: Page; context: BrowserContext; errors: string[] }> {
  const context = await newContext(t);
  const page = await context.newPage();
  const errors = watchErrors(page);
  if ('link' in how) {
    await page.goto(how.link);
    await page.getByText('Activating for Contoso VPN.').waitFor();
  } else {
    await page.goto(`${s.base}/app/`);
    await page.getByLabel('Activation code or link').fill(how.code);
  }
  await page.getByLabel('Name of this phone').fill('Test phone');
  await page.getByRole('button', { name: 'Activate' }).click();
  if (pin) {
    await page.getByRole('alert').filter({ hasText: 'requires a PIN' }).waitFor();
    await page.getByLabel('Choose a PIN to approve requests (4 to 12 digits)').fill(pin);
    await page.getByRole('button', { name: 'Activate' }).click();
  }
  await page.getByText(/^Activated: Contoso VPN/).waitFor();
  assert.equal(new URL(page.url()).search, '', 'the code is gone from the address bar');
  return { page, context, errors };
}

const vpnLogin = (s: Setup, username: string, password: string, extra: Record<string, string> = {}) =>
  radclient({ 'User-Name': username, 'User-Password': password, 'NAS-Identifier': 'office-vpn', 'NAS-IP-Address': '10.0.0.1', 'Calling-Station-Id': '203.0.113.7', ...extra }, { port: s.server.authPort, secret: s.server.secret, timeout: 25 });

test('a new user activates the app from the portal link; a held VPN login shows in the app with its context, Approve -> Access-Accept', async (t) => {
  const s = await appServer(t);
  const { link } = await activationFromPortal(t, s, 'alice', 'alice-pw', true);
  const { page, errors } = await activateApp(t, s, { link });
  const [device] = await s.server.store.devices.list('alice');
  assert.equal(device?.name, 'Test phone');

  // The key is WebCrypto's, kept non-extractable in IndexedDB.
  // Browser-side code as text: this project's TypeScript has no DOM types.
  const stored = await page.evaluate(`(async () => {
    const db = await new Promise((res, rej) => {
      const r = indexedDB.open('radius-mfa-app', 1);
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    const all = await new Promise((res) => {
      const r = db.transaction('accounts').objectStore('accounts').getAll();
      r.onsuccess = () => res(r.result);
    });
    const key = all[0].privateKey;
    return { count: all.length, type: key.type, extractable: key.extractable, algorithm: key.algorithm.namedCurve, usages: key.usages };
  })()`);
  assert.deepEqual(stored, { count: 1, type: 'private', extractable: false, algorithm: 'P-256', usages: ['sign'] });

  const login = vpnLogin(s, 'alice', 'alice-pw');
  const card = page.locator('li.request');
  await card.getByRole('button', { name: 'Approve' }).waitFor({ timeout: 15_000 });
  await assertCardText(card, { title: 'Sign-in as alice', client: 'test-nas (office-vpn)', from: '203.0.113.7 via 10.0.0.1' });
  assert.match((await card.locator('.countdown').textContent())!, /^Expires in (2\d|30) s$/);
  await screenshot(page, 'app-pending-request');
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.getByText('Approved. You can go back to the sign-in.').waitFor();
  const reply = await login;
  assert.equal(reply.code, 'Access-Accept');
  assert.equal(s.server.logs.filter({ event: 'push_answer' })[0]?.device, device!.id);
  assert.deepEqual(errors, []);
});

test('Deny rejects the login; "This wasn\'t me" rejects it and locks the account', async (t) => {
  const s = await appServer(t);
  const { code } = await activationFromPortal(t, s, 'bob', 'bob-pw');
  const { page, errors } = await activateApp(t, s, { code });

  const denied = vpnLogin(s, 'bob', 'bob-pw');
  const first = page.locator('li.request').first();
  await first.getByRole('button', { name: 'Deny' }).click({ timeout: 15_000 });
  await first.getByText('Denied.').waitFor();
  const r1 = await denied;
  assert.equal(r1.code, 'Access-Reject');
  assert.match(r1.attributes['Reply-Message']![0]!, /denied on your phone/);

  const fraud = vpnLogin(s, 'bob', 'bob-pw', { 'Calling-Station-Id': '198.51.100.9' });
  const open = page.locator('li.request:not(.finished)');
  await open.getByText('198.51.100.9').waitFor({ timeout: 15_000 });
  const second = page.locator(`li[data-request="${await open.getAttribute('data-request')}"]`);
  await second.getByRole('button', { name: "This wasn't me" }).click();
  await page.getByText('Reported. The account is locked').waitFor();
  const r2 = await fraud;
  assert.equal(r2.code, 'Access-Reject');
  assert.match(r2.attributes['Reply-Message']![0]!, /reported as not yours/);
  assert.ok((await s.server.store.getUser('bob'))?.lockedUntil, 'locked');
  assert.equal(s.server.logs.filter({ alert: 'fraud' }).length, 1);
  assert.deepEqual(errors, []);
});

test('number matching: the app shows the number, the VPN prompt takes it after Approve -> Access-Accept; a wrong number is rejected', async (t) => {
  const s = await appServer(t, { number_matching: true });
  const { code } = await activationFromPortal(t, s, 'carol', 'carol-pw');
  const { page } = await activateApp(t, s, { code });

  for (const right of [true, false]) {
    const challenge = await vpnLogin(s, 'carol', 'carol-pw');
    assert.equal(challenge.code, 'Access-Challenge');
    assert.match(challenge.attributes['Reply-Message']![0]!, /type the number/);
    const open = page.locator('li.request:not(.finished)');
    await open.waitFor({ timeout: 15_000 });
    const card = page.locator(`li[data-request="${await open.getAttribute('data-request')}"]`);
    const number = (await card.locator('.req-number').textContent())!;
    assert.match(number, /^\d{2}$/);
    await card.getByRole('button', { name: 'Approve' }).click();
    await card.getByText('Approved.').waitFor();
    const typed = right ? number : String(((Number(number) - 10 + 1) % 90) + 10);
    const answer = await vpnLogin(s, 'carol', typed, { State: challenge.attributes.State![0]! });
    assert.equal(answer.code, right ? 'Access-Accept' : 'Access-Reject');
  }
});

test('with mfa.push.pin required: the app asks for a PIN at activation and to approve; a wrong PIN is refused', async (t) => {
  const s = await appServer(t, { pin: 'required' });
  const { code } = await activationFromPortal(t, s, 'dan', 'dan-pw');
  const { page } = await activateApp(t, s, { code }, '4711');

  const login = vpnLogin(s, 'dan', 'dan-pw');
  const card = page.locator('li.request');
  await card.getByRole('button', { name: 'Approve' }).click({ timeout: 15_000 });
  await card.getByText('Type your PIN to approve.').waitFor();
  await card.getByLabel('PIN').fill('0000');
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.getByText('Wrong PIN.').waitFor();
  await card.getByLabel('PIN').fill('4711');
  await card.getByRole('button', { name: 'Approve' }).click();
  await card.getByText('Approved.').waitFor();
  assert.equal((await login).code, 'Access-Accept');
});

test('offline: the code view shows the code the server expects, with the server gone and the network cut', async (t) => {
  const s = await appServer(t);
  await s.server.store.addUser({ username: 'erin', passwordHash: await hashPassword('erin-pw') });
  const activation = await createActivation(s.server.store, s.server.config, 'erin', s.server.clock.now(), true);
  const { page, context } = await activateApp(t, s, { code: activation.activation_code });
  const totp = (await s.server.store.getUser('erin'))!.totp!;
  assert.ok(totp, 'activation with codes enrolled a TOTP secret');
  // The service worker controls the page once it is ready: from then on the app's files come from its cache.
  await page.evaluate('navigator.serviceWorker.ready.then(() => true)');
  await page.reload();
  assert.equal(await page.evaluate('navigator.serviceWorker.controller !== null'), true);

  await s.server.close();
  await context.setOffline(true);
  await page.reload();
  await page.getByRole('button', { name: 'Codes' }).click();
  const otp = page.locator('#codes .otp');
  await otp.waitFor();
  await page.getByText('Offline: codes still work').waitFor();
  await screenshot(page, 'app-codes');
  const shown = (await otp.getAttribute('data-code'))!;
  assert.equal((await otp.textContent())!.replace(/\s/g, ''), shown);
  assert.match((await page.locator('#codes .countdown').textContent())!, /^New code in \d+ s$/);
  // The server's own check, at the real time the browser used (the step window covers a tick across a boundary).
  assert.notEqual(verifyTotp(totp, shown, Date.now(), 1), undefined, `code ${shown} is not one the server accepts now`);
});

async function assertCardText(card: ReturnType<Page['locator']>, want: { title: string; client: string; from: string }): Promise<void> {
  assert.equal(await card.locator('.req-title').textContent(), want.title);
  assert.equal(await card.locator('.req-client').textContent(), want.client);
  assert.equal(await card.locator('.req-from').textContent(), want.from);
  assert.match((await card.locator('.req-time').textContent())!, /\d{1,2}:\d{2}:\d{2}/);
}
