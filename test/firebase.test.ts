// FirebasePushSender against a local fake FCM: firebase-admin's own send() code path, with its HTTPS
// agent redirected to a plain-HTTP server on loopback and a fake credential (no OAuth exchange).
// Every socket the process opens during a test is recorded: nothing may leave loopback.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createActivation } from '../src/mfa/activation.js';
import { FakeFcm, PROJECT, senderFor, type Reply } from './helpers/fake-fcm.js';
import { SimulatedPhone } from './helpers/phone.js';
import { radclient } from './helpers/radclient.js';
import { enrollTotp, startTestServer } from './helpers/server.js';

/** Records the target of every TCP connection this process starts (http, https, tls, http2 all end here). */
function recordConnections(t: TestContext): string[] {
  const targets: string[] = [];
  const original = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    const first = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0];
    const opts = (typeof first === 'object' && first !== null ? first : { port: first, host: args[1] }) as { host?: string; port?: number; path?: string };
    targets.push(opts.path ?? `${opts.host ?? 'localhost'}:${opts.port}`);
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof original;
  t.after(() => {
    net.Socket.prototype.connect = original;
  });
  return targets;
}

async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const MESSAGE = { requestId: 'Zq3v9p1GZ3aVbAq0oV7Ykw', text: 'Sign-in request', ttlMs: 60_000 };

const fcmError = (status: number, statusText: string, errorCode?: string) => ({
  error: {
    code: status,
    message: `fake ${statusText}`,
    status: statusText,
    ...(errorCode ? { details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode }] } : {}),
  },
});

test('send() reaches the fake FCM with a data message of only request_id and text, and 200 means ok', async (t) => {
  const connections = recordConnections(t);
  const fcm = await FakeFcm.start(() => ({ status: 200, body: { name: `projects/${PROJECT}/messages/0:1234` } }));
  t.after(() => fcm.close());
  const { sender, agent, tokenRequests } = await senderFor(fcm.port);

  assert.deepEqual(await sender.send('device-registration-token-1', MESSAGE), { ok: true });

  assert.equal(fcm.received.length, 1);
  const req = fcm.received[0]!;
  assert.equal(req.method, 'POST');
  assert.equal(req.url, `/v1/projects/${PROJECT}/messages:send`);
  assert.equal(req.headers.authorization, 'Bearer fake-access-token');
  assert.equal(req.headers.host, 'fcm.googleapis.com');
  assert.deepEqual(req.body, {
    message: {
      token: 'device-registration-token-1',
      data: { request_id: MESSAGE.requestId, text: 'Sign-in request' },
      android: { priority: 'high', ttl: '60s' },
      apns: { headers: { 'apns-priority': '10', 'apns-push-type': 'alert' }, payload: { aps: { alert: 'Sign-in request', sound: 'default' } } },
    },
  });
  // Who the user is, which VPN, from where: none of it rides in the notification.
  assert.deepEqual(Object.keys(req.body.message.data as object).sort(), ['request_id', 'text']);

  assert.deepEqual(agent.asked, ['fcm.googleapis.com:443'], 'firebase-admin asked for FCM only (no OAuth host: the credential is local)');
  assert.deepEqual(connections, [`127.0.0.1:${fcm.port}`], 'the only TCP connection this process opened went to the fake');
  assert.equal(tokenRequests(), 1);
});

test('404 UNREGISTERED -> stale_token (the device must register a new token)', async (t) => {
  const connections = recordConnections(t);
  const fcm = await FakeFcm.start(() => ({ status: 404, body: fcmError(404, 'NOT_FOUND', 'UNREGISTERED') }));
  t.after(() => fcm.close());
  const { sender } = await senderFor(fcm.port);
  assert.deepEqual(await sender.send('gone-token', MESSAGE), { ok: false, kind: 'stale_token', detail: 'messaging/registration-token-not-registered' });
  assert.equal(fcm.received.length, 1);
  assert.deepEqual(connections, [`127.0.0.1:${fcm.port}`]);
});

// FCM v1 answers a malformed token with 400 INVALID_ARGUMENT and a token of another Firebase project with
// 403 SENDER_ID_MISMATCH; firebase-admin names them messaging/invalid-argument and messaging/mismatched-credential.
// A malformed token never works: stale, so the app is asked for a new one (not "FCM down", which failmode safe
// would turn into an accept). A sender-id mismatch may be our own credential: unavailable.
test('400 INVALID_ARGUMENT -> stale_token; 403 SENDER_ID_MISMATCH -> unavailable (firebase-admin 14 codes)', async (t) => {
  const connections = recordConnections(t);
  const replies: Reply[] = [
    { status: 400, body: fcmError(400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT') },
    { status: 403, body: fcmError(403, 'PERMISSION_DENIED', 'SENDER_ID_MISMATCH') },
  ];
  const fcm = await FakeFcm.start((n) => replies[n - 1]!);
  t.after(() => fcm.close());
  const { sender } = await senderFor(fcm.port);
  assert.deepEqual(await sender.send('malformed-token', MESSAGE), { ok: false, kind: 'stale_token', detail: 'messaging/invalid-argument' });
  assert.deepEqual(await sender.send('other-project-token', MESSAGE), { ok: false, kind: 'unavailable', detail: 'messaging/mismatched-credential' });
  assert.equal(fcm.received.length, 2);
  assert.deepEqual(connections, [`127.0.0.1:${fcm.port}`, `127.0.0.1:${fcm.port}`]);
});

test('500 -> unavailable, without a retry', async (t) => {
  const connections = recordConnections(t);
  const fcm = await FakeFcm.start(() => ({ status: 500, body: fcmError(500, 'INTERNAL', 'INTERNAL') }));
  t.after(() => fcm.close());
  const { sender } = await senderFor(fcm.port);
  const r = await sender.send('token', MESSAGE);
  assert.deepEqual(r, { ok: false, kind: 'unavailable', detail: 'messaging/internal-error' });
  assert.equal(fcm.received.length, 1);
  assert.deepEqual(connections, [`127.0.0.1:${fcm.port}`]);
});

test('connection refused -> unavailable, at once', async (t) => {
  const connections = recordConnections(t);
  // A port that was free a moment ago: nothing listens there.
  const fcm = await FakeFcm.start(() => ({ status: 200 }));
  const port = fcm.port;
  await fcm.close();
  const { sender, agent } = await senderFor(port);
  const started = performance.now();
  const r = await sender.send('token', MESSAGE);
  const ms = performance.now() - started;
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.kind, 'unavailable');
  assert.equal(!r.ok && r.detail, 'app/network-error');
  assert.ok(ms < 2000, `${ms} ms`);
  assert.deepEqual(agent.asked, ['fcm.googleapis.com:443']);
  assert.deepEqual(connections, [`127.0.0.1:${port}`]);
});

test('a connection reset mid-request is retried by firebase-admin; a success on the retry is ok', async (t) => {
  recordConnections(t);
  const fcm = await FakeFcm.start((n) => (n === 1 ? 'hang-up' : { status: 200, body: { name: `projects/${PROJECT}/messages/2` } }));
  t.after(() => fcm.close());
  const { sender } = await senderFor(fcm.port);
  assert.deepEqual(await sender.send('token', MESSAGE), { ok: true });
  assert.equal(fcm.received.length, 2);
  assert.deepEqual(fcm.received[1]!.body, fcm.received[0]!.body);
});

test('503 is retried by firebase-admin (4 retries, 1+2+4 s back-off) before send() reports unavailable', async (t) => {
  recordConnections(t);
  const fcm = await FakeFcm.start(() => ({ status: 503, body: fcmError(503, 'UNAVAILABLE', 'UNAVAILABLE') }));
  t.after(() => fcm.close());
  const { sender } = await senderFor(fcm.port);
  const started = performance.now();
  const r = await sender.send('token', MESSAGE);
  const ms = performance.now() - started;
  t.diagnostic(`503: ${fcm.received.length} requests, unavailable after ${Math.round(ms)} ms`);
  assert.deepEqual(r, { ok: false, kind: 'unavailable', detail: 'messaging/server-unavailable' });
  assert.equal(fcm.received.length, 5);
  assert.ok(ms >= 6500 && ms < 12_000, `${ms} ms`);
});

test('end to end: the server pushes through firebase-admin to the fake FCM; a stale token marks the device and tells the user', async (t) => {
  const connections = recordConnections(t);
  let status = 200;
  const fcm = await FakeFcm.start((n) => (status === 200 ? { status, body: { name: `projects/${PROJECT}/messages/${n}` } } : { status, body: fcmError(404, 'NOT_FOUND', 'UNREGISTERED') }));
  t.after(() => fcm.close());
  const { sender } = await senderFor(fcm.port);
  const server = await startTestServer({
    pushSender: sender,
    config: { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', reject_delay: '0ms', push: { timeout: '5s', text: 'VPN sign-in' } } },
  });
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.httpPort}`;
  await enrollTotp(server.store, 'alice', { password: 'pw-alice' });
  const phone = await SimulatedPhone.activate(base, (await createActivation(server.store, server.config, 'alice', server.clock.now())).activation_code, { pushToken: 'fcm-alice-1' });
  const login = () => radclient({ 'User-Name': 'alice', 'User-Password': 'pw-alice', 'Calling-Station-Id': '203.0.113.7' }, { port: server.authPort, secret: server.secret, timeout: 8 });
  const tokenState = async () => (await phone.device()).body.push_token_state;
  assert.deepEqual((await phone.device()).body, { device_id: phone.deviceId, username: 'alice', name: 'test phone', push_token_state: 'active' });

  const held = login();
  const pending = await phone.waitForPending();
  // The pending request exists before the push is sent: wait for the fake to have it.
  await until(() => fcm.received.length === 1);
  assert.deepEqual(fcm.received[0]!.body.message.token, 'fcm-alice-1');
  assert.deepEqual(fcm.received[0]!.body.message.data, { request_id: pending.id, text: 'VPN sign-in' });
  assert.deepEqual(fcm.received[0]!.body.message.android, { priority: 'high', ttl: '5s' });
  await phone.answer(pending.id, 'approve');
  assert.equal((await held).code, 'Access-Accept');

  status = 404;
  const refused = await login();
  assert.equal(refused.code, 'Access-Reject');
  assert.match(refused.attributes['Reply-Message']![0]!, /no longer registered for notifications/);
  assert.equal((await server.store.devices.list('alice'))[0]!.pushTokenStale, true);
  assert.equal(await tokenState(), 'stale', 'the app can see that it must send a new token');
  // A stale token is not tried again until the app sends a new one.
  const before = fcm.received.length;
  assert.equal((await login()).code, 'Access-Reject');
  assert.equal(fcm.received.length, before);

  status = 200;
  assert.equal((await phone.setPushToken('fcm-alice-2')).status, 204);
  assert.equal((await server.store.devices.list('alice'))[0]!.pushTokenStale, false);
  assert.equal(await tokenState(), 'active');
  const again = login();
  const next = await phone.waitForPending();
  await until(() => fcm.received.length === before + 1);
  assert.equal(fcm.received.at(-1)!.body.message.token, 'fcm-alice-2');
  await phone.answer(next.id, 'approve');
  assert.equal((await again).code, 'Access-Accept');
  assert.equal((await phone.setPushToken(null)).status, 204);
  assert.equal(await tokenState(), 'none', 'no token: the device polls');

  const outside = connections.filter((c) => !c.startsWith('127.0.0.1:'));
  assert.deepEqual(outside, [], 'every TCP connection (FCM via the agent, the phone\'s HTTP calls) stayed on loopback');
  assert.ok(connections.filter((c) => c === `127.0.0.1:${fcm.port}`).length >= 3);
});

test('send() gives up when FCM keeps retrying past the push lifetime: the held request is not kept waiting', async (t) => {
  recordConnections(t);
  const fcm = await FakeFcm.start(() => ({ status: 503, body: fcmError(503, 'UNAVAILABLE', 'UNAVAILABLE') }));
  t.after(() => fcm.close());
  const { sender } = await senderFor(fcm.port);
  const started = performance.now();
  const r = await sender.send('token', { ...MESSAGE, ttlMs: 500 });
  assert.deepEqual(r, { ok: false, kind: 'unavailable', detail: 'no answer from FCM in time' });
  assert.ok(performance.now() - started < 5000, 'well before firebase-admin\'s own retries end (about 7 s)');
});
