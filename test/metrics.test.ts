import { test } from 'node:test';
import assert from 'node:assert/strict';
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
