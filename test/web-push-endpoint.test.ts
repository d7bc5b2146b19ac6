// A Web Push endpoint that the allowlist (WHATWG URL) and web-push's connection (legacy url.parse) read
// differently. "https://127.0.0.1;.push.example.net/x" looks like a subdomain of push.example.net to the
// first and is 127.0.0.1:443 to the second. An HTTPS agent that records where web-push asks to connect
// (and sends a connection for 127.0.0.1:443 to the local fake push service, the stand-in for whatever
// listens there) shows where the server would really have gone.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import webpush from 'web-push';
import { createActivation } from '../src/mfa/activation.js';
import { pushServiceEndpoint, WEB_PUSH_PREFIX } from '../src/mfa/push-token.js';
import { createWebPushSender, type WebPushSettings } from '../src/mfa/web-push-sender.js';
import { FakePushService, Subscriber } from './helpers/fake-push-service.js';
import { httpCall, newKeyPair, publicKeyBase64, SimulatedPhone } from './helpers/phone.js';
import { radclient } from './helpers/radclient.js';
import { enrollTotp, startTestServer } from './helpers/server.js';

const keys = webpush.generateVAPIDKeys();
// 127.0.0.1 is NOT a push service here: only push.example.net is.
const VAPID: WebPushSettings = { vapid_public_key: keys.publicKey, vapid_private_key: keys.privateKey, subject: 'mailto:helpdesk@example.com', push_services: ['push.example.net'] };
const SMUGGLED = 'https://127.0.0.1;.push.example.net/x';
const MESSAGE = { requestId: 'h2mNw6rVt0aP1cQ9xYb3Lg', text: 'Sign-in request', ttlMs: 10_000 };

/** Records "host:port" of every connection web-push opens; one for 127.0.0.1:443 reaches the fake push service. */
async function recordingAgent(t: TestContext): Promise<{ agent: Agent; connections: string[]; service: FakePushService }> {
  const service = await FakePushService.start();
  t.after(() => service.close());
  const connections: string[] = [];
  const agent = new Agent({ ca: service.agent.options.ca, keepAlive: false });
  const servicePort = Number(new URL(service.origin).port);
  const connect = (Agent.prototype as unknown as { createConnection(o: ConnectionOptions, cb?: unknown): Socket }).createConnection;
  Object.assign(agent, {
    createConnection(o: ConnectionOptions, cb?: unknown): Socket {
      connections.push(`${o.host}:${o.port}`);
      return connect.call(agent, o.host === '127.0.0.1' && Number(o.port) === 443 ? { ...o, port: servicePort } : o, cb);
    },
  });
  t.after(() => agent.destroy());
  return { agent, connections, service };
}

test('an endpoint whose host url.parse reads otherwise is refused at activation and rotation, and the server never connects there', async (t) => {
  const { agent, connections, service } = await recordingAgent(t);
  const server = await startTestServer({
    webPushAgent: agent,
    config: { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', push: { timeout: '10s' } }, mobile_app: { web_push: VAPID } },
  });
  t.after(() => server.close());
  await enrollTotp(server.store, 'alice', { password: 'pw-alice' });
  const base = `http://127.0.0.1:${server.httpPort}`;
  const code = async () => (await createActivation(server.store, server.config, 'alice', server.clock.now())).activation_code;
  const smuggled = new Subscriber(SMUGGLED).pushToken;

  const activation = await httpCall<{ error?: { code: string } }>('POST', `${base}/api/v1/activation`, {
    activation_code: await code(),
    device_name: 'attacker',
    public_key: await publicKeyBase64(await newKeyPair()),
    push_token: smuggled,
  });
  // A polling phone, then the same endpoint through token rotation.
  const phone = await SimulatedPhone.activate(base, await code());
  const rotation = await httpCall<{ error?: { code: string } }>('POST', `${base}/api/v1/push-token`, { push_token: smuggled }, phone.token);

  // A VPN login held for push: every stored push token is sent to; the polling phone approves.
  const held = radclient({ 'User-Name': 'alice', 'User-Password': 'pw-alice' }, { port: server.authPort, secret: server.secret, timeout: 8 });
  await phone.answer((await phone.waitForPending()).id, 'approve');
  assert.equal((await held).code, 'Access-Accept');

  assert.deepEqual(
    { activation: [activation.status, activation.body?.error?.code], rotation: [rotation.status, rotation.body?.error?.code], connections, pushes: service.received.length },
    { activation: [400, 'INVALID_PUSH_TOKEN'], rotation: [400, 'INVALID_PUSH_TOKEN'], connections: [], pushes: 0 },
  );
  assert.ok((await server.store.devices.list('alice')).every((d) => d.pushToken === null));
});

test('a stored subscription with such an endpoint (kept from before) is stale at send time: no connection is made', async (t) => {
  const { agent, connections, service } = await recordingAgent(t);
  const sender = createWebPushSender(VAPID, { agent });
  const result = await sender.send(new Subscriber(SMUGGLED).pushToken, MESSAGE);
  assert.deepEqual({ result, connections, pushes: service.received.length }, { result: { ok: false, kind: 'stale_token', detail: 'not a valid web push subscription' }, connections: [], pushes: 0 });
});

test('activation and rotation store the subscription with its normalized endpoint and nothing else', async (t) => {
  const server = await startTestServer({ config: { http: { listen: '127.0.0.1:0' }, mobile_app: { web_push: VAPID } } });
  t.after(() => server.close());
  await enrollTotp(server.store, 'alice', { password: 'pw-alice' });
  const base = `http://127.0.0.1:${server.httpPort}`;
  const code = (await createActivation(server.store, server.config, 'alice', server.clock.now())).activation_code;

  const first = new Subscriber('https://EU.Push.Example.NET:443/send/a%62c?x#frag');
  const phone = await SimulatedPhone.activate(base, code, { pushToken: first.pushToken });
  const stored = () => server.store.devices.list('alice').then((d) => d[0]!.pushToken);
  assert.equal(await stored(), WEB_PUSH_PREFIX + JSON.stringify({ ...first.subscription, endpoint: 'https://eu.push.example.net/send/a%62c?x#frag' }));

  const renewed = new Subscriber('https://push.example.net/send/def');
  const extra = WEB_PUSH_PREFIX + JSON.stringify({ ...renewed.subscription, expirationTime: null, extra: 'kept out' });
  assert.equal((await httpCall('POST', `${base}/api/v1/push-token`, { push_token: extra }, phone.token)).status, 204);
  assert.equal(await stored(), WEB_PUSH_PREFIX + JSON.stringify(renewed.subscription));
});

test('endpoint check: WHATWG and url.parse must name the same host; only plain DNS hosts on the allowlist pass', () => {
  const services = ['fcm.googleapis.com'];
  const refused = [
    'https://127.0.0.1;.fcm.googleapis.com/x',
    'https://127.0.0.1%3B.fcm.googleapis.com/x',
    'https://evil.example@fcm.googleapis.com/x',
    'https://fcm.googleapis.com:443@127.0.0.1/x',
    'https://[::1]/x',
    'https://fcm.googleapis.com./x',
    'http://fcm.googleapis.com/x',
    'https://fcm.googleapis.com.evil.example/x',
  ];
  for (const endpoint of refused) assert.equal(pushServiceEndpoint(endpoint, services), undefined, endpoint);
  assert.equal(pushServiceEndpoint('https://FCM.googleapis.com:443/fcm/send/a?b#c', services), 'https://fcm.googleapis.com/fcm/send/a?b#c');
  // WHATWG turns the backslash into a path separator; the normalized URL is what url.parse then sees too.
  assert.equal(pushServiceEndpoint('https://fcm.googleapis.com\\@127.0.0.1/x', services), 'https://fcm.googleapis.com/@127.0.0.1/x');
  assert.equal(pushServiceEndpoint('https://eu.fcm.googleapis.com/x', services), 'https://eu.fcm.googleapis.com/x');
});
