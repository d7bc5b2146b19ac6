import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createActivation } from '../src/mfa/activation.js';
import type { PushSender } from '../src/mfa/push-sender.js';
import { SimulatedPhone } from './helpers/phone.js';
import { radclient } from './helpers/radclient.js';
import { enrollTotp, startTestServer } from './helpers/server.js';

/** FCM failing slowly (firebase-admin retries a 503 for ~7 s): the request is visible in /pending all that time. */
const slowlyFailing = (ms: number): PushSender => ({
  send: () => new Promise((resolve) => setTimeout(() => resolve({ ok: false, kind: 'unavailable', detail: 'messaging/server-unavailable' }), ms)),
});

async function setup(failmode: 'safe' | 'secure') {
  const server = await startTestServer({
    pushSender: slowlyFailing(600),
    config: { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', failmode, push: { timeout: '10s' } } },
  });
  await enrollTotp(server.store, 'alice', { password: 'pw-alice' });
  const code = (await createActivation(server.store, server.config, 'alice', server.clock.now())).activation_code;
  const phone = await SimulatedPhone.activate(`http://127.0.0.1:${server.httpPort}`, code, { pushToken: 'fcm-token' });
  const login = () => radclient({ 'User-Name': 'alice', 'User-Password': 'pw-alice' }, { port: server.authPort, secret: server.secret, timeout: 8 });
  const reasons = () => server.logs.audits('alice').filter((a) => a.msg === 'decision').map((a) => a.reason);
  return { server, phone, login, reasons };
}

for (const [decision, what, code, reason] of [
  ['fraud', 'fraud report', 'Access-Reject', 'fraud'],
  ['deny', 'denial', 'Access-Reject', 'push_denied'],
  ['approve', 'approval', 'Access-Accept', 'push_approved'],
] as const) {
  test(`failmode safe: a ${what} given in the app while FCM delivery is failing stands (${code})`, async (t) => {
    const { server, phone, login, reasons } = await setup('safe');
    t.after(() => server.close());
    const held = login();
    const request = await phone.waitForPending();
    assert.equal((await phone.answer(request.id, decision)).status, 200);
    assert.equal((await held).code, code);
    assert.deepEqual(reasons(), [reason]);
  });
}

test('failmode secure: an approval given in the app while FCM delivery is failing is honoured', async (t) => {
  const { server, phone, login, reasons } = await setup('secure');
  t.after(() => server.close());
  const held = login();
  await phone.answer((await phone.waitForPending()).id, 'approve');
  assert.equal((await held).code, 'Access-Accept');
  assert.deepEqual(reasons(), ['push_approved']);
});

test('without an answer, a failed delivery still follows failmode: safe accepts, secure rejects', async (t) => {
  for (const [failmode, code, reason] of [
    ['safe', 'Access-Accept', 'failmode_safe'],
    ['secure', 'Access-Reject', 'push_unavailable'],
  ] as const) {
    const { server, login, reasons } = await setup(failmode);
    t.after(() => server.close());
    assert.equal((await login()).code, code);
    assert.deepEqual(reasons(), [reason]);
  }
});
