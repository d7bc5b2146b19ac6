// Every log line is one JSON object whose keys are unique. The base logger binds `service: "radius-mfa"`;
// a line that names another key `service` carried it twice, and pipelines that refuse duplicate keys
// (or keep the first) lost those lines. JSON.parse hides this, so the raw text is checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../src/log/logger.js';
import { createActivation } from '../src/mfa/activation.js';
import { reportingPushSender, type PushSender } from '../src/mfa/push-sender.js';
import { duplicateKeys } from './helpers/json-keys.js';
import { SimulatedPhone } from './helpers/phone.js';
import { radclient } from './helpers/radclient.js';
import { enrollTotp, LogCapture, startTestServer } from './helpers/server.js';

const MESSAGE = { requestId: 'r1', text: 'Sign-in request', ttlMs: 10_000 };
const failing: PushSender = { send: async () => ({ ok: false, kind: 'unavailable', detail: 'messaging/server-unavailable' }) };

test('a "push not delivered" line names the push service as push_service and has no key twice', async () => {
  const logs = new LogCapture();
  const sender = reportingPushSender(failing, createLogger('info', logs), () => {});
  await sender.send('fcm-token', MESSAGE);
  await sender.send('webpush:{}', MESSAGE);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(logs.lines.length, 2);
  for (const raw of logs.lines) assert.deepEqual(duplicateKeys(raw), [], raw);
  assert.deepEqual(
    logs.records.map((r) => [r.msg, r.service, r.push_service, r.kind]),
    [
      ['push not delivered', 'radius-mfa', 'fcm', 'unavailable'],
      ['push not delivered', 'radius-mfa', 'web_push', 'unavailable'],
    ],
  );
});

test('no line of a push login whose delivery fails, from activation to the reject, carries a key twice', async (t) => {
  const server = await startTestServer({
    pushSender: failing,
    config: { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', failmode: 'secure', push: { timeout: '10s' } } },
  });
  t.after(() => server.close());
  await enrollTotp(server.store, 'alice', { password: 'pw-alice' });
  const code = (await createActivation(server.store, server.config, 'alice', server.clock.now())).activation_code;
  await SimulatedPhone.activate(`http://127.0.0.1:${server.httpPort}`, code, { pushToken: 'fcm-token' });

  const r = await radclient({ 'User-Name': 'alice', 'User-Password': 'pw-alice' }, { port: server.authPort, secret: server.secret, timeout: 8 });
  assert.equal(r.code, 'Access-Reject');
  await server.logs.waitFor({ msg: 'push not delivered' });
  await server.logs.waitFor({ msg: 'decision' });
  const duplicated = server.logs.lines.map((raw) => ({ raw, keys: duplicateKeys(raw) })).filter((l) => l.keys.length > 0);
  assert.deepEqual(duplicated, []);
});
