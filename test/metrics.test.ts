import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createActivation } from '../src/mfa/activation.js';
import type { PushSendResult } from '../src/mfa/push-sender.js';
import { SimulatedPhone } from './helpers/phone.js';
import { radclient } from './helpers/radclient.js';
import { enrollTotp, startTestServer, wrongCodeAt } from './helpers/server.js';

/** The value of one sample line, e.g. `radius_decisions_total{...,reason="bad_code"} 1`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith(' ') || rest.startsWith('{'))) continue;
    if (Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) return Number(line.split(' ').at(-1));
  }
  return undefined;
}

test('metrics count decisions by reason, drops by reason and retransmissions, on their own port', async (t) => {
  const s = await startTestServer({ config: { metrics: { listen: '127.0.0.1:0' } } });
  t.after(() => s.close());
  const alice = await enrollTotp(s.store, 'alice', { password: 'pw' });
  const send = (password: string, secret = s.secret) => radclient({ 'User-Name': 'alice', 'User-Password': password }, { port: s.authPort, secret, timeout: secret === s.secret ? 5 : 0.5 });
  assert.equal((await send('pw' + alice.codeAt(s.clock.now()))).code, 'Access-Accept');
  assert.equal((await send('pw' + wrongCodeAt(alice, s.clock.now()))).code, 'Access-Reject');
  assert.equal((await send('pw123456', 'not-the-secret')).code, 'timeout');

  const res = await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.equal(sample(text, 'radius_decisions_total', { client: 'test-nas', method: 'totp', result: 'accept', reason: 'second_factor_ok' }), 1);
  assert.equal(sample(text, 'radius_decisions_total', { result: 'reject', reason: 'bad_code' }), 1);
  assert.equal(sample(text, 'radius_datagrams_dropped_total', { reason: 'bad_message_authenticator' }), 1);
  assert.equal(sample(text, 'radius_datagrams_received_total'), 3);
  assert.equal(sample(text, 'radius_replies_total'), 2);
  assert.equal(sample(text, 'radius_pushes_pending'), 0);
  assert.equal((await fetch(`http://127.0.0.1:${s.metricsPort}/other`)).status, 404);
});

test('pushes handed to a push service are counted by service and result', async (t) => {
  // What FCM answers, in order: delivered, down, then "token gone".
  const answers: PushSendResult[] = [{ ok: true }, { ok: false, kind: 'unavailable', detail: 'FCM 503' }, { ok: false, kind: 'stale_token', detail: 'UNREGISTERED' }];
  const s = await startTestServer({
    pushSender: { send: async () => answers.shift() ?? { ok: false, kind: 'unavailable', detail: 'no more answers scripted' } },
    config: { metrics: { listen: '127.0.0.1:0' }, http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', reject_delay: '0ms', push: { timeout: '5s' } } },
  });
  t.after(() => s.close());
  await enrollTotp(s.store, 'alice', { password: 'pw' });
  const code = (await createActivation(s.store, s.config, 'alice', s.clock.now())).activation_code;
  const phone = await SimulatedPhone.activate(`http://127.0.0.1:${s.httpPort}`, code, { pushToken: 'fcm-alice' });
  const login = () => radclient({ 'User-Name': 'alice', 'User-Password': 'pw' }, { port: s.authPort, secret: s.secret, timeout: 8 });

  const held = login();
  await phone.answer((await phone.waitForPending()).id, 'approve');
  assert.equal((await held).code, 'Access-Accept');
  assert.match((await login()).attributes['Reply-Message']![0]!, /cannot be sent to phones right now/);
  assert.match((await login()).attributes['Reply-Message']![0]!, /no longer registered for notifications/);

  const text = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
  assert.equal(sample(text, 'radius_push_deliveries_total', { service: 'fcm', result: 'sent' }), 1);
  assert.equal(sample(text, 'radius_push_deliveries_total', { service: 'fcm', result: 'unavailable' }), 1);
  assert.equal(sample(text, 'radius_push_deliveries_total', { service: 'fcm', result: 'stale_token' }), 1);
  assert.equal(sample(text, 'radius_push_deliveries_total', { service: 'web_push' }), undefined);
  assert.equal(sample(text, 'radius_decisions_total', { result: 'reject', reason: 'push_unavailable' }), 1);
});
