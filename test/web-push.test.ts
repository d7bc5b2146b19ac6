// Web Push to the companion app: the web-push library's own requests to a local fake push service
// over real TLS on 127.0.0.1, checked from the subscriber's side (RFC 8291 decryption, RFC 8292
// VAPID signature); the Mobile App API's part; and a VPN login through the real radclient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import webpush from 'web-push';
import { createActivation } from '../src/mfa/activation.js';
import { WEB_PUSH_PREFIX } from '../src/mfa/push-token.js';
import { routePushSender, type PushSender } from '../src/mfa/push-sender.js';
import { createWebPushSender, type WebPushSettings } from '../src/mfa/web-push-sender.js';
import { FakePushService, Subscriber, verifyVapid, type PushReply } from './helpers/fake-push-service.js';
import { httpCall, newKeyPair, publicKeyBase64, SimulatedPhone } from './helpers/phone.js';
import { radclient } from './helpers/radclient.js';
import { enrollTotp, startTestServer, type StartOptions } from './helpers/server.js';

const keys = webpush.generateVAPIDKeys();
// The fake push service listens on 127.0.0.1: allowed here as a push service host, with push.example.net for the API tests.
const VAPID: WebPushSettings = { vapid_public_key: keys.publicKey, vapid_private_key: keys.privateKey, subject: 'mailto:helpdesk@example.com', push_services: ['127.0.0.1', 'push.example.net'] };
const MESSAGE = { requestId: 'h2mNw6rVt0aP1cQ9xYb3Lg', text: 'Sign-in request', ttlMs: 60_000 };

async function pushService(t: { after: (fn: () => Promise<void>) => void }, reply?: (n: number) => PushReply) {
  const service = await FakePushService.start(reply);
  t.after(() => service.close());
  return { service, sender: createWebPushSender(VAPID, { agent: service.agent }) };
}

test('a push reaches the endpoint signed with our VAPID key for its origin, and decrypts to exactly {request_id, text}', async (t) => {
  const { service, sender } = await pushService(t);
  const subscriber = new Subscriber(`${service.origin}/push/sub-1`);
  const before = Math.floor(Date.now() / 1000);

  assert.deepEqual(await sender.send(subscriber.pushToken, MESSAGE), { ok: true });

  const [push] = await service.waitForPushes(1);
  assert.equal(push!.method, 'POST');
  assert.equal(push!.url, '/push/sub-1');
  // RFC 8030 §5.2 / §5.3: dropped if not delivered while the request waits; delivered at once.
  assert.equal(push!.headers.ttl, '60');
  assert.equal(push!.headers.urgency, 'high');
  assert.equal(push!.headers['content-encoding'], 'aes128gcm');
  const { claims, publicKey } = verifyVapid(push!.headers.authorization);
  assert.equal(publicKey, VAPID.vapid_public_key);
  assert.equal(claims.aud, service.origin);
  assert.equal(claims.sub, VAPID.subject);
  assert.ok(claims.exp > before && claims.exp <= before + 24 * 3600, `exp ${claims.exp} is in the next 24 h (RFC 8292 §2)`);
  assert.deepEqual(JSON.parse(subscriber.decrypt(push!.body).toString('utf8')), { request_id: MESSAGE.requestId, text: 'Sign-in request' });
});

test('the sender refuses an endpoint outside push_services without connecting (stored before the list changed): stale_token', async (t) => {
  const { service } = await pushService(t);
  const strict = createWebPushSender({ ...VAPID, push_services: ['fcm.googleapis.com'] }, { agent: service.agent });
  const result = await strict.send(new Subscriber(`${service.origin}/push/elsewhere`).pushToken, MESSAGE);
  assert.deepEqual(result, { ok: false, kind: 'stale_token', detail: 'not a valid web push subscription' });
  assert.equal(service.received.length, 0);
});

test('the push lifetime becomes the TTL in whole seconds', async (t) => {
  const { service, sender } = await pushService(t);
  await sender.send(new Subscriber(`${service.origin}/push/ttl`).pushToken, { ...MESSAGE, ttlMs: 9_999 });
  assert.equal((await service.waitForPushes(1))[0]!.headers.ttl, '9');
});

test('404 and 410 from the push service -> stale_token; 500, 503 and 429 -> unavailable', async (t) => {
  const statuses = [404, 410, 500, 503, 429];
  const { service, sender } = await pushService(t, (n) => statuses[n - 1]!);
  const results = [];
  for (const status of statuses) results.push([status, await sender.send(new Subscriber(`${service.origin}/push/${status}`).pushToken, MESSAGE)]);
  assert.deepEqual(results, [
    [404, { ok: false, kind: 'stale_token', detail: 'push service answered 404' }],
    [410, { ok: false, kind: 'stale_token', detail: 'push service answered 410' }],
    [500, { ok: false, kind: 'unavailable', detail: 'push service answered 500' }],
    [503, { ok: false, kind: 'unavailable', detail: 'push service answered 503' }],
    [429, { ok: false, kind: 'unavailable', detail: 'push service answered 429' }],
  ]);
});

test('a refused connection -> unavailable', async () => {
  // A port that was free a moment ago: nothing listens there.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  const sender = createWebPushSender(VAPID);
  assert.deepEqual(await sender.send(new Subscriber(`https://127.0.0.1:${port}/push/x`).pushToken, MESSAGE), { ok: false, kind: 'unavailable', detail: 'ECONNREFUSED' });
});

test('a push service that never answers -> unavailable once the push lifetime is over', async (t) => {
  const { service, sender } = await pushService(t, () => 'hang');
  const started = performance.now();
  const result = await sender.send(new Subscriber(`${service.origin}/push/slow`).pushToken, { ...MESSAGE, ttlMs: 300 });
  const ms = performance.now() - started;
  assert.deepEqual(result, { ok: false, kind: 'unavailable', detail: 'no answer from the push service in time' });
  assert.equal((await service.waitForPushes(1)).length, 1);
  assert.ok(ms >= 290 && ms < 3000, `gave up after ${ms} ms`);
});

test('a stored token that is no valid subscription is stale and sends nothing', async (t) => {
  const { service, sender } = await pushService(t);
  for (const token of ['webpush:{', 'webpush:{"endpoint":"http://127.0.0.1/x","keys":{"p256dh":"AA","auth":"AA"}}', 'an-fcm-token']) {
    assert.deepEqual(await sender.send(token, MESSAGE), { ok: false, kind: 'stale_token', detail: 'not a valid web push subscription' });
  }
  assert.equal(service.received.length, 0);
});

test('routing: webpush: tokens go to Web Push, others to FCM; a kind with no sender configured is no_sender', async () => {
  const sent: string[] = [];
  const fake = (name: string): PushSender => ({ send: async (token) => (sent.push(`${name} ${token}`), { ok: true }) });
  const both = routePushSender({ fcm: fake('fcm'), webPush: fake('web') });
  await both.send('webpush:{}', MESSAGE);
  await both.send('fcm-token', MESSAGE);
  assert.deepEqual(sent, ['web webpush:{}', 'fcm fcm-token']);
  assert.deepEqual(await routePushSender({ fcm: fake('fcm') }).send('webpush:{}', MESSAGE), { ok: false, kind: 'no_sender', detail: 'mobile_app.web_push is not configured' });
  assert.deepEqual(await routePushSender({ webPush: fake('web') }).send('fcm-token', MESSAGE), { ok: false, kind: 'no_sender', detail: 'mobile_app.firebase is not configured' });
});

// ---- the Mobile App API and a VPN login ----

async function pushServer(t: { after: (fn: () => Promise<void>) => void }, opts: StartOptions & { webPush?: boolean } = {}) {
  const server = await startTestServer({
    ...opts,
    config: {
      http: { listen: '127.0.0.1:0' },
      mfa: { default_method: 'push', push: { timeout: '10s' } },
      ...(opts.webPush === false ? {} : { mobile_app: { web_push: VAPID } }),
    },
  });
  t.after(() => server.close());
  await enrollTotp(server.store, 'alice', { password: 'pw-alice' });
  const base = `http://127.0.0.1:${server.httpPort}`;
  const code = async () => (await createActivation(server.store, server.config, 'alice', server.clock.now())).activation_code;
  const login = () => radclient({ 'User-Name': 'alice', 'User-Password': 'pw-alice' }, { port: server.authPort, secret: server.secret, timeout: 8 });
  const reasons = () => server.logs.audits('alice').filter((a) => a.msg === 'decision').map((a) => a.reason);
  return { server, base, code, login, reasons };
}

test('GET /api/v1/web-push gives the VAPID public key to subscribe with, and null without mobile_app.web_push', async (t) => {
  const on = await pushServer(t);
  assert.deepEqual(await httpCall('GET', `${on.base}/api/v1/web-push`), { status: 200, body: { vapid_public_key: VAPID.vapid_public_key } });
  const off = await pushServer(t, { webPush: false });
  assert.deepEqual(await httpCall('GET', `${off.base}/api/v1/web-push`), { status: 200, body: { vapid_public_key: null } });
});

test('push_token takes a webpush: subscription at activation and in POST /push-token; a malformed one, or one on a host outside push_services, is INVALID_PUSH_TOKEN', async (t) => {
  const { server, base, code } = await pushServer(t);
  const subscriber = new Subscriber('https://push.example.net/send/abc');
  const phone = await SimulatedPhone.activate(base, await code(), { pushToken: subscriber.pushToken });
  // Stored as checked: the subscription's endpoint and keys (test/web-push-endpoint.test.ts).
  assert.equal((await server.store.devices.list('alice'))[0]!.pushToken, WEB_PUSH_PREFIX + JSON.stringify(subscriber.subscription));

  const bad = [
    'webpush:not json',
    `webpush:${JSON.stringify({ ...subscriber.subscription, endpoint: 'http://push.example.net/send/abc' })}`,
    `webpush:${JSON.stringify({ ...subscriber.subscription, keys: { ...subscriber.subscription.keys, auth: 'c2hvcnQ' } })}`,
    `webpush:${JSON.stringify({ ...subscriber.subscription, keys: { ...subscriber.subscription.keys, p256dh: Buffer.alloc(65, 4).toString('base64url') } })}`,
    // Not a push service: the server would POST to the cloud metadata address, a look-alike or a sibling domain.
    `webpush:${JSON.stringify({ ...subscriber.subscription, endpoint: 'https://169.254.169.254/latest/meta-data' })}`,
    `webpush:${JSON.stringify({ ...subscriber.subscription, endpoint: 'https://push.example.net.attacker.example/x' })}`,
    `webpush:${JSON.stringify({ ...subscriber.subscription, endpoint: 'https://notpush.example.net/x' })}`,
  ];
  for (const token of bad) {
    const r = await httpCall<{ error: { code: string } }>('POST', `${base}/api/v1/push-token`, { push_token: token }, phone.token);
    assert.deepEqual([r.status, r.body.error.code], [400, 'INVALID_PUSH_TOKEN'], token);
  }
  const activation = await httpCall<{ error: { code: string } }>('POST', `${base}/api/v1/activation`, { activation_code: await code(), device_name: 'x', public_key: await publicKeyBase64(await newKeyPair()), push_token: bad[0] });
  assert.deepEqual([activation.status, activation.body.error.code], [400, 'INVALID_PUSH_TOKEN']);

  const renewed = new Subscriber('https://eu.push.example.net/send/def');
  assert.equal((await httpCall('POST', `${base}/api/v1/push-token`, { push_token: renewed.pushToken }, phone.token)).status, 204);
  assert.equal((await server.store.devices.list('alice'))[0]!.pushToken, WEB_PUSH_PREFIX + JSON.stringify(renewed.subscription));
});

test('a VPN login held for push sends the encrypted {request_id, text} to the subscription of alice\'s phone; Approve -> Access-Accept', async (t) => {
  const service = await FakePushService.start();
  t.after(() => service.close());
  const { base, code, login, reasons } = await pushServer(t, { webPushAgent: service.agent });
  const subscriber = new Subscriber(`${service.origin}/push/alice-phone`);
  const phone = await SimulatedPhone.activate(base, await code(), { pushToken: subscriber.pushToken });

  const held = login();
  const [push] = await service.waitForPushes(1);
  const pending = await phone.waitForPending();
  assert.equal(push!.url, '/push/alice-phone');
  assert.equal(push!.headers.ttl, '10', 'mfa.push.timeout');
  assert.equal(verifyVapid(push!.headers.authorization).claims.aud, service.origin);
  assert.deepEqual(JSON.parse(subscriber.decrypt(push!.body).toString('utf8')), { request_id: pending.id, text: 'Sign-in request' });

  assert.equal((await phone.answer(pending.id, 'approve')).status, 200);
  assert.equal((await held).code, 'Access-Accept');
  assert.deepEqual(reasons(), ['push_approved']);
  assert.equal(service.received.length, 1, 'one push per attempt');
});

test('a subscription the push service answers 410 for is marked stale: the VPN is told to open the app; a new subscription clears it', async (t) => {
  const service = await FakePushService.start((n) => (n === 1 ? 410 : 201));
  t.after(() => service.close());
  const { server, base, code, login, reasons } = await pushServer(t, { webPushAgent: service.agent });
  const phone = await SimulatedPhone.activate(base, await code(), { pushToken: new Subscriber(`${service.origin}/push/expired`).pushToken });

  const first = await login();
  assert.equal(first.code, 'Access-Reject');
  assert.match(first.attributes['Reply-Message']![0]!, /no longer registered for notifications/);
  assert.equal((await server.store.devices.list('alice'))[0]!.pushTokenStale, true);
  // The admin is told what the push service said.
  const notDelivered = server.logs.records.filter((r) => r.msg === 'push not delivered');
  assert.deepEqual(notDelivered.map((r) => [r.level, r.push_service, r.kind, r.detail]), [['warn', 'web_push', 'stale_token', 'push service answered 410']]);

  const renewed = new Subscriber(`${service.origin}/push/renewed`);
  assert.equal((await httpCall('POST', `${base}/api/v1/push-token`, { push_token: renewed.pushToken }, phone.token)).status, 204);
  const held = login();
  const pushes = await service.waitForPushes(2);
  assert.equal(pushes[1]!.url, '/push/renewed');
  await phone.answer((await phone.waitForPending()).id, 'approve');
  assert.equal((await held).code, 'Access-Accept');
  assert.deepEqual(reasons(), ['push_token_stale', 'push_approved']);
});

test('with Web Push but no FCM configured, a phone that registered an FCM token polls: its login is held, not failed', async (t) => {
  const { base, code, login, reasons } = await pushServer(t);
  const phone = await SimulatedPhone.activate(base, await code(), { pushToken: 'fcm-registration-token' });
  const held = login();
  await phone.answer((await phone.waitForPending()).id, 'approve');
  assert.equal((await held).code, 'Access-Accept');
  assert.deepEqual(reasons(), ['push_approved']);
});
