// Web Push in the companion app, in real headless Chromium. Chromium reaches no push service here
// (its contexts are off the record, and the tests are offline), so PushManager.subscribe() fails and
// the app must fall back to polling. The service worker's push handler is driven through DevTools
// (ServiceWorker.deliverPushMessage), as a push service would, while the page's clock stands still so
// that only the push can make the open app fetch the request.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import webpush from 'web-push';
import { hashPassword } from '../src/auth/password-hash.js';
import { createActivation } from '../src/mfa/activation.js';
import { launchBrowser, phoneContext, watchErrors } from './helpers/browser.js';
import { radclient } from './helpers/radclient.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

let browser: Browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

type After = { after: (fn: () => Promise<void>) => void };

const keys = webpush.generateVAPIDKeys();

async function setup(t: After) {
  const server = await startTestServer({
    start: Date.now(),
    config: {
      http: { listen: '127.0.0.1:0' },
      mobile_app: { account_name: 'Contoso VPN', web_push: { vapid_public_key: keys.publicKey, vapid_private_key: keys.privateKey, subject: 'mailto:helpdesk@example.com', push_services: ['127.0.0.1'] } },
      mfa: { default_method: 'push', reject_delay: '0ms', push: { timeout: '30s' } },
    },
  });
  t.after(() => server.close());
  await server.store.addUser({ username: 'alice', passwordHash: await hashPassword('alice-pw') });
  return { server, base: `http://127.0.0.1:${server.httpPort}` };
}

/** A phone with the app open on an activation link; `notifications` grants the permission beforehand. */
async function openApp(t: After, s: { server: TestServer; base: string }, notifications: boolean, prepare?: (page: Page) => Promise<void>) {
  const context: BrowserContext = await phoneContext(browser);
  t.after(() => context.close().catch(() => undefined));
  if (notifications) await context.grantPermissions(['notifications'], { origin: s.base });
  const page = await context.newPage();
  const errors = watchErrors(page);
  await prepare?.(page);
  // The link the portal shows; the config's http.listen says port 0, so the bound port replaces it.
  const link = new URL((await createActivation(s.server.store, s.server.config, 'alice', s.server.clock.now())).qr_payload);
  await page.goto(`${s.base}${link.pathname}${link.search}`);
  await page.getByText('Activating for Contoso VPN.').waitFor();
  await page.getByRole('button', { name: 'Activate' }).click();
  await page.getByText(/^Activated: Contoso VPN/).waitFor();
  return { context, page, errors };
}

/** Without Chromium's own console notice when subscribe() is called in an off-the-record context (every playwright context is one). */
const appErrors = (errors: string[]) => errors.filter((e) => !e.startsWith('console: Chrome currently does not support the Push API in incognito mode'));

const vpnLogin = (server: TestServer) => radclient({ 'User-Name': 'alice', 'User-Password': 'alice-pw' }, { port: server.authPort, secret: server.secret, timeout: 25 });

test('notifications allowed but no push service: the app says it polls, registers no subscription, and still gets the request', async (t) => {
  const s = await setup(t);
  const { page, errors } = await openApp(t, s, true);
  await page.getByText('This app checks for sign-in requests while it is open: no push service is reachable from this browser.').waitFor();
  assert.equal(await page.evaluate('Notification.permission'), 'granted');
  assert.equal((await s.server.store.devices.list('alice'))[0]!.pushToken, null, 'no subscription registered');

  const login = vpnLogin(s.server);
  const card = page.locator('li.request');
  await card.getByRole('button', { name: 'Approve' }).click({ timeout: 15_000 });
  await card.getByText('Approved.').waitFor();
  assert.equal((await login).code, 'Access-Accept');
  assert.deepEqual(appErrors(errors), []);
});

/**
 * A stand-in for the browser's side of Web Push (Chromium here reaches no push service): subscribe()
 * hands out subscriptions numbered 1, 2, ... on an allowed host; they outlive a reload, as real ones do.
 */
const FAKE_PUSH_MANAGER = `(() => {
  const saved = () => JSON.parse(localStorage.getItem('fake-push') ?? 'null');
  const asSubscription = (s) => s && {
    endpoint: s.json.endpoint,
    options: { applicationServerKey: new Uint8Array(s.key).buffer },
    toJSON: () => s.json,
    unsubscribe: async () => (localStorage.removeItem('fake-push'), true),
  };
  PushManager.prototype.getSubscription = async () => asSubscription(saved());
  PushManager.prototype.subscribe = async (options) => {
    const n = Number(localStorage.getItem('fake-push-made') ?? 0) + 1;
    localStorage.setItem('fake-push-made', String(n));
    const json = { endpoint: 'https://127.0.0.1/push/' + n, expirationTime: null, keys: { p256dh: ${JSON.stringify(keys.publicKey)}, auth: 'gHimP8HNHURPnCl6D7cD5w' } };
    localStorage.setItem('fake-push', JSON.stringify({ json, key: [...new Uint8Array(options.applicationServerKey)] }));
    return asSubscription(saved());
  };
})();`;

test('a subscription the server marks stale is replaced when the app is next opened, and the new one is registered', async (t) => {
  const s = await setup(t);
  const { page, errors } = await openApp(t, s, true, async (page) => {
    await page.addInitScript(FAKE_PUSH_MANAGER);
  });
  const on = page.getByText('Notifications are on: sign-in requests reach this phone even when the app is closed.');
  await on.waitFor();
  const device = async () => (await s.server.store.devices.list('alice'))[0]!;
  assert.match((await device()).pushToken!, /^webpush:\{"endpoint":"https:\/\/127\.0\.0\.1\/push\/1"/);

  await page.reload();
  await on.waitFor();
  assert.equal(await page.evaluate("localStorage.getItem('fake-push-made')"), '1', 'a live subscription is kept');

  // The push service answered 404/410 for it (test/web-push.test.ts), so the server marked it stale.
  await s.server.store.devices.markPushTokenStale((await device()).id);
  await page.reload();
  await until(async () => ((await device()).pushToken?.includes('/push/2"') ? true : undefined), 'the new subscription to be registered');
  assert.equal((await device()).pushTokenStale, false);
  await on.waitFor();
  assert.equal(await page.evaluate("localStorage.getItem('fake-push-made')"), '2');
  assert.deepEqual(appErrors(errors), []);
});

test('notifications refused when the app asks at activation: it says they are blocked, registers nothing, and polls', async (t) => {
  const s = await setup(t);
  // Headless Chromium answers the permission prompt with "deny", as a user could.
  const { page, errors } = await openApp(t, s, false);
  await page.getByText('This app checks for sign-in requests while it is open: notifications are blocked for this site.').waitFor();
  assert.equal(await page.evaluate('Notification.permission'), 'denied');
  assert.equal(await page.getByRole('button', { name: 'Turn on notifications' }).isVisible(), false, 'only the browser settings can undo a denial');
  assert.equal((await s.server.store.devices.list('alice'))[0]!.pushToken, null);
  assert.deepEqual(appErrors(errors), []);
});

test('a push to the service worker shows "Approve sign-in?" and makes the open app fetch the request at once; Approve -> Access-Accept', async (t) => {
  const s = await setup(t);
  const polls: string[] = [];
  let inFlight = 0;
  const { context, page, errors } = await openApp(t, s, true, async (page) => {
    // The page's clock stands still: no timer fires, so after activation the app polls once and then
    // waits for its 2 s timer forever. Only a push can make it fetch again.
    await page.clock.install();
    await page.clock.pauseAt(Date.now() + 1000);
    page.on('request', (r) => r.url().endsWith('/api/v1/pending') && (inFlight++, polls.push(r.url())));
    page.on('requestfinished', (r) => r.url().endsWith('/api/v1/pending') && inFlight--);
    page.on('requestfailed', (r) => r.url().endsWith('/api/v1/pending') && inFlight--);
  });
  await until(() => (polls.length === 1 && inFlight === 0 ? true : undefined), 'the poll right after activation');
  await page.evaluate('navigator.serviceWorker.ready.then(() => true)');
  const cdp = await context.newCDPSession(page);
  const registrations = new Map<string, string>();
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => {
    for (const r of e.registrations) if (!r.isDeleted) registrations.set(r.scopeURL, r.registrationId);
  });
  await cdp.send('ServiceWorker.enable');
  const registrationId = await until(() => registrations.get(`${s.base}/app/`), 'the /app/ service worker registration');

  const login = vpnLogin(s.server);
  const push = await until(async () => (await s.server.app.pending.openFor('alice'))[0], 'the held push');
  assert.equal(await page.locator('li.request').count(), 0);
  assert.equal(polls.length, 1, 'the app does not poll while its clock stands still');

  // What the server's Web Push payload is: only the request id and the text.
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: s.base, registrationId, data: JSON.stringify({ request_id: push.id, text: 'Sign-in request' }) });
  const card = page.locator(`li[data-request="${push.id}"]`);
  await card.getByRole('button', { name: 'Approve' }).waitFor();
  assert.equal(polls.length, 2, 'one fetch, caused by the push');

  const notifications = await until(async () => {
    const list = (await page.evaluate('navigator.serviceWorker.ready.then((r) => r.getNotifications()).then((l) => l.map((n) => ({ title: n.title, body: n.body, tag: n.tag })))')) as unknown[];
    return list.length ? list : undefined;
  }, 'the notification');
  assert.deepEqual(notifications, [{ title: 'Approve sign-in?', body: 'Sign-in request', tag: push.id }]);

  await card.getByRole('button', { name: 'Approve' }).click();
  await card.getByText('Approved.').waitFor();
  assert.equal((await login).code, 'Access-Accept');
  assert.deepEqual(appErrors(errors), []);
});
