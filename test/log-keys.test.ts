// Every log line is one JSON object whose keys are unique. The base logger binds `service: "radius-mfa"`;
// a line that names another key `service` carried it twice, and pipelines that refuse duplicate keys
// (or keep the first) lost those lines. JSON.parse hides this, so the raw text is checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, writeLine } from '../src/log/logger.js';
import { createActivation } from '../src/mfa/activation.js';
import { reportingPushSender, type PushSender } from '../src/mfa/push-sender.js';
import { duplicateKeys } from './helpers/json-keys.js';
import { SimulatedPhone } from './helpers/phone.js';
import { radclient } from './helpers/radclient.js';
import { enrollTotp, LogCapture, startTestServer, wrongCodeAt } from './helpers/server.js';

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

test('the audit line, written as text, reads byte for byte as pino writes the same record', async (t) => {
  const server = await startTestServer();
  t.after(() => server.close());
  const alice = await enrollTotp(server.store, 'alice', { password: 'pw-alice' });
  const now = server.clock.now();
  const ask = (name: string, password: string) =>
    radclient(
      { 'User-Name': name, 'User-Password': password, 'NAS-Identifier': 'vpn "east" \\ ünïcode', 'NAS-IP-Address': '192.0.2.7', 'Calling-Station-Id': '198.51.100.9' },
      { port: server.authPort, secret: server.secret },
    );
  assert.equal((await ask(' ALICE ', `pw-alice${alice.codeAt(now)}`)).code, 'Access-Accept'); // info, with login
  assert.equal((await ask('alice', `pw-alice${wrongCodeAt(alice, now)}`)).code, 'Access-Reject'); // warn, with alert
  assert.equal((await ask('nobody', 'pw-nobody123456')).code, 'Access-Reject'); // unknown user
  await server.logs.waitFor((r) => r.audit === true && r.user === 'nobody');

  const lines = server.logs.lines.filter((l) => l.includes('"audit":true') && l.includes('"msg":"decision"'));
  assert.equal(lines.length, 3);
  // The keys of every audit line, in this order (absent when undefined): a public format that pipelines parse.
  const ORDER = ['level', 'time', 'service', 'audit', 'q', 'user', 'login', 'client', 'src', 'nas_id', 'nas_ip', 'calling_station', 'method', 'result', 'reason', 'ms', 'alert', 'msg'];
  for (const raw of lines) {
    const keys = Object.keys(JSON.parse(raw) as object);
    assert.deepEqual(keys, ORDER.filter((k) => keys.includes(k)), raw);
    const { level, time, service, msg, ...fields } = JSON.parse(raw) as Record<string, unknown>;
    assert.equal(service, 'radius-mfa');
    const again = new LogCapture();
    createLogger('trace', again)[level as 'info' | 'warn'](fields, msg as string);
    assert.equal(raw, again.lines[0]!.replace(/"time":"[^"]*"/, `"time":"${time as string}"`));
  }
  assert.deepEqual(
    lines.map((l) => JSON.parse(l) as Record<string, unknown>).map((r) => [r.level, r.user, r.login, r.result, r.reason, r.alert, r.nas_id]),
    [
      ['info', 'alice', ' ALICE ', 'accept', 'second_factor_ok', undefined, 'vpn "east" \\ ünïcode'],
      ['warn', 'alice', undefined, 'reject', 'bad_code', 'possible_stolen_password', 'vpn "east" \\ ünïcode'],
      ['info', 'nobody', undefined, 'reject', 'unknown_user', undefined, 'vpn "east" \\ ünïcode'],
    ],
  );
});

test("writeLine on a child logger carries the child's bindings, as pino's own call does", () => {
  const out = new LogCapture();
  const child = createLogger('info', out).child({ node: 'a' });
  assert.equal(writeLine(child, 'info', '"audit":true,"user":"alice"', 'decision'), true);
  child.info({ audit: true, user: 'alice' }, 'decision');
  const [ours, pinos] = out.lines.map((l) => l.replace(/"time":"[^"]*"/, '"time":"T"'));
  assert.equal(ours, pinos);
  assert.match(ours!, /"service":"radius-mfa","node":"a","audit":true/);
});
