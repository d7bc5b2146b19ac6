// Upstream RADIUS first factor against a real FreeRADIUS 3.2 (started here on loopback), driven by the
// real radclient as the NAS. Our server strips the code, re-hides the password with the upstream secret,
// signs with Message-Authenticator and verifies every reply.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createLogger } from '../src/log/logger.js';
import { createActivation } from '../src/mfa/activation.js';
import { encodeResponse } from '../src/radius/crypto.js';
import { UpstreamClient } from '../src/radius/client.js';
import { Attr, Code, decodePacket, encodeAttribute } from '../src/radius/packet.js';
import { SimulatedPhone } from './helpers/phone.js';
import { startFreeradius, type Freeradius } from './helpers/freeradius.js';
import { freeUdpPort } from '../scripts/engines/ports.js';
import { radclient, type AttributeInput } from './helpers/radclient.js';
import { enrollTotp, LogCapture, startTestServer, type ConfigInput, type TestServer } from './helpers/server.js';

const UP_SECRET = 'upstream-Secret-1';
let fr: Freeradius;
let unsigned: Freeradius;

const USERS = [
  { name: 'alice', password: 'alice-Passw0rd', reply: ['Class := "upstream-class"', 'Filter-Id := "from-upstream"', 'Cisco-AVPair += "ip:addr-pool=vpn"', 'Session-Timeout := 7200'] },
  { name: 'bob', password: 'bob-Passw0rd' },
];
const CHALLENGERS = [{ name: 'carl', password: 'carl-Passw0rd', prompt: 'Enter your upstream PIN', answer: '4242' }];

before(async () => {
  [fr, unsigned] = await Promise.all([
    startFreeradius({ secret: UP_SECRET, users: USERS, challengers: CHALLENGERS }),
    startFreeradius({ secret: UP_SECRET, users: USERS, signReplies: false }),
  ]);
});
after(async () => {
  await fr?.stop();
  await unsigned?.stop();
});

function upstream(servers: { port: number; secret?: string; require_message_authenticator?: boolean }[], over: ConfigInput = {}): ConfigInput {
  return {
    type: 'radius',
    servers: servers.map((s) => ({ address: `127.0.0.1:${s.port}`, secret: s.secret ?? UP_SECRET, ...(s.require_message_authenticator === false ? { require_message_authenticator: false } : {}) })),
    timeout: '400ms',
    retries: 1,
    ...over,
  };
}

async function server(t: TestContext, firstFactor: ConfigInput, config: ConfigInput = {}): Promise<TestServer> {
  const s = await startTestServer({ config: { first_factor: firstFactor, mfa: { default_method: 'totp' }, ...config } });
  t.after(() => s.close());
  return s;
}

function ask(s: TestServer, attributes: AttributeInput) {
  return radclient(attributes, { port: s.authPort, secret: s.secret, timeout: 8 });
}

const hex = (s: string) => '0x' + Buffer.from(s).toString('hex');

test('accept: the password without the code goes upstream; its Class, Filter-Id and VSAs reach the NAS with ours', async (t) => {
  const s = await server(t, upstream([{ port: fr.port }]), { groups: { staff: { members: ['alice'], reply: { 'Fortinet-Group-Name': 'staff' } } } });
  const alice = await enrollTotp(s.store, 'alice');
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': USERS[0]!.password + alice.codeAt(s.clock.now()) });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.deepEqual(r.attributes['Class'], [hex('upstream-class')]);
  assert.deepEqual(r.attributes['Filter-Id'], ['from-upstream']);
  assert.deepEqual(r.attributes['Cisco-AVPair'], ['ip:addr-pool=vpn']);
  assert.deepEqual(r.attributes['Session-Timeout'], ['7200']);
  assert.deepEqual(r.attributes['Fortinet-Group-Name'], ['staff']);
  assert.equal(r.order[0], 'Message-Authenticator');
  assert.equal(s.logs.audits('alice')[0]?.reason, 'second_factor_ok');
  const all = s.logs.lines.join('\n');
  for (const secret of [UP_SECRET, USERS[0]!.password, s.secret]) assert.ok(!all.includes(secret), 'a secret reached the log');
});

test('reply_attributes filter: deny drops, allow keeps only the listed ones', async (t) => {
  const s1 = await server(t, upstream([{ port: fr.port }], { reply_attributes: { deny: ['Class', 'Cisco-AVPair'] } }), { mfa: { default_method: 'none' } });
  const r1 = await ask(s1, { 'User-Name': 'alice', 'User-Password': USERS[0]!.password });
  assert.equal(r1.code, 'Access-Accept', r1.stdout);
  assert.equal(r1.attributes['Class'], undefined);
  assert.equal(r1.attributes['Cisco-AVPair'], undefined);
  assert.deepEqual(r1.attributes['Filter-Id'], ['from-upstream']);
  const s2 = await server(t, upstream([{ port: fr.port }], { reply_attributes: { allow: ['Class'] } }), { mfa: { default_method: 'none' } });
  const r2 = await ask(s2, { 'User-Name': 'alice', 'User-Password': USERS[0]!.password });
  assert.deepEqual(Object.keys(r2.attributes).sort(), ['Class', 'Message-Authenticator']);
});

test('reject: a wrong password is rejected upstream and counted as bad_password', async (t) => {
  const s = await server(t, upstream([{ port: fr.port }]));
  const bob = await enrollTotp(s.store, 'bob');
  const r = await ask(s, { 'User-Name': 'bob', 'User-Password': 'not-his-password' + bob.codeAt(s.clock.now()) });
  assert.equal(r.code, 'Access-Reject');
  assert.equal(r.attributes['Filter-Id'], undefined);
  assert.equal(s.logs.audits('bob')[0]?.reason, 'bad_password');
});

test('challenge pass-through: the upstream prompt reaches the NAS under our State, the answer goes back with its State', async (t) => {
  const s = await server(t, upstream([{ port: fr.port }]), { mfa: { default_method: 'none' } });
  const c = await ask(s, { 'User-Name': 'carl', 'User-Password': 'carl-Passw0rd' });
  assert.equal(c.code, 'Access-Challenge', c.stdout);
  assert.deepEqual(c.attributes['Reply-Message'], ['Enter your upstream PIN']);
  const state = c.attributes['State']![0]!;
  assert.notEqual(state, hex('upstrea0'), 'the upstream State must not be handed to the NAS');
  assert.equal(s.logs.audits('carl')[0]?.reason, 'upstream_challenge');
  const r = await ask(s, { 'User-Name': 'carl', 'User-Password': '4242', State: state });
  assert.equal(r.code, 'Access-Accept', r.stdout);

  // A wrong answer is rejected by the upstream.
  const c2 = await ask(s, { 'User-Name': 'carl', 'User-Password': 'carl-Passw0rd' });
  const r2 = await ask(s, { 'User-Name': 'carl', 'User-Password': '0000', State: c2.attributes['State']![0]! });
  assert.equal(r2.code, 'Access-Reject');
});

test('challenge pass-through with TOTP: upstream PIN first, then our own code prompt', async (t) => {
  const s = await server(t, upstream([{ port: fr.port }]));
  const carl = await enrollTotp(s.store, 'carl');
  const c1 = await ask(s, { 'User-Name': 'carl', 'User-Password': 'carl-Passw0rd' + carl.codeAt(s.clock.now()) });
  assert.equal(c1.code, 'Access-Challenge', c1.stdout);
  const c2 = await ask(s, { 'User-Name': 'carl', 'User-Password': '4242', State: c1.attributes['State']![0]! });
  assert.equal(c2.code, 'Access-Challenge', c2.stdout);
  assert.equal(s.logs.audits('carl')[1]?.reason, 'code_requested');
  const r = await ask(s, { 'User-Name': 'carl', 'User-Password': carl.codeAt(s.clock.now()), State: c2.attributes['State']![0]! });
  assert.equal(r.code, 'Access-Accept', r.stdout);
});

test('upstream down: failover to the next server in order; all down -> reject after timeout x tries, with the reason logged', async (t) => {
  const dead = await freeUdpPort();
  const s = await server(t, upstream([{ port: dead }, { port: fr.port }]), { mfa: { default_method: 'none' } });
  const r = await ask(s, { 'User-Name': 'bob', 'User-Password': 'bob-Passw0rd' });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.ok(s.logs.filter((l) => l.upstream === `127.0.0.1:${dead}`).length > 0, 'the dead server is logged');

  const s2 = await server(t, upstream([{ port: dead }, { port: dead + 1 === fr.port ? dead + 2 : dead + 1 }]), { mfa: { default_method: 'none' } });
  const started = performance.now();
  const r2 = await ask(s2, { 'User-Name': 'bob', 'User-Password': 'bob-Passw0rd' });
  const ms = performance.now() - started;
  assert.equal(r2.code, 'Access-Reject');
  assert.match(r2.attributes['Reply-Message']!.join(''), /cannot check passwords/);
  assert.equal(s2.logs.audits('bob')[0]?.reason, 'first_factor_unavailable');
  // 2 servers x 2 tries x 400 ms, plus slack; never the NAS's whole timeout.
  assert.ok(ms >= 1500 && ms < 4000, `took ${ms} ms`);
  const line = s2.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('no upstream RADIUS server answered'))[0];
  assert.match(String(line?.reason), /no answer after 2 tries of 400 ms/);
});

test('wrong upstream secret: FreeRADIUS drops the request, we reject with a log line that names the likely cause', async (t) => {
  const s = await server(t, upstream([{ port: fr.port, secret: 'not-the-secret' }]), { mfa: { default_method: 'none' } });
  const r = await ask(s, { 'User-Name': 'bob', 'User-Password': 'bob-Passw0rd' });
  assert.equal(r.code, 'Access-Reject');
  const line = s.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('no upstream RADIUS server answered'))[0];
  assert.match(String(line?.reason), /wrong shared secret/);
  assert.match(fr.output(), /Shared secret is incorrect|invalid Message-Authenticator/i);
});

test('a reply signed with another secret is dropped and logged (raw responder)', async (t) => {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  t.after(() => sock.close());
  sock.on('message', (msg, rinfo) => {
    const req = decodePacket(msg);
    if (!req.ok) return;
    const reply = encodeResponse({
      code: Code.AccessAccept, identifier: req.packet.identifier, requestAuthenticator: req.packet.authenticator,
      attributes: Buffer.alloc(0), proxyStates: [], secret: Buffer.from('other-secret'), withMessageAuthenticator: true,
    });
    sock.send(reply, rinfo.port, rinfo.address);
  });
  const logs = new LogCapture();
  const client = new UpstreamClient({ servers: [{ host: '127.0.0.1', port: sock.address().port, secret: Buffer.from(UP_SECRET) }], timeoutMs: 300, retries: 0, logger: createLogger('info', logs) });
  t.after(() => client.close());
  const r = await client.exchange({ code: Code.AccessRequest, attributes: encodeAttribute(Attr.UserName, 'bob'), password: Buffer.from('pw') });
  assert.equal(r.kind, 'no_response');
  assert.match(logs.lines.join('\n'), /does not verify: wrong shared secret\?/);
});

test('BlastRADIUS: an upstream reply without Message-Authenticator is dropped unless that server is exempted', async (t) => {
  const s = await server(t, upstream([{ port: unsigned.port }]), { mfa: { default_method: 'none' } });
  const r = await ask(s, { 'User-Name': 'bob', 'User-Password': 'bob-Passw0rd' });
  assert.equal(r.code, 'Access-Reject');
  assert.ok(s.logs.filter((l) => typeof l.msg === 'string' && l.msg.includes('has no Message-Authenticator')).length > 0);

  const s2 = await server(t, upstream([{ port: unsigned.port, require_message_authenticator: false }]), { mfa: { default_method: 'none' } });
  assert.equal((await ask(s2, { 'User-Name': 'bob', 'User-Password': 'bob-Passw0rd' })).code, 'Access-Accept');
  assert.ok(s2.logs.filter((l) => typeof l.msg === 'string' && l.msg.includes('exposed to BlastRADIUS')).length > 0);
});

test('accounting: verified, answered, logged as JSON and forwarded to the upstream accounting server', async (t) => {
  const s = await server(t, upstream([{ port: fr.port }]), {
    accounting: { forward: { servers: [{ address: `127.0.0.1:${fr.acctPort}`, secret: UP_SECRET }], timeout: '500ms', retries: 2 } },
  });
  const session = `sess-${process.pid}-${Date.now()}`;
  const r = await radclient(
    { 'User-Name': 'alice', 'Acct-Status-Type': 'Start', 'Acct-Session-Id': session, 'NAS-Identifier': 'vpn-1', Class: hex('upstream-class') },
    { port: s.acctPort, secret: s.secret, type: 'acct', timeout: 5, messageAuthenticator: false },
  );
  assert.equal(r.code, 'Accounting-Response', r.stdout);
  const line = await s.logs.waitFor({ msg: 'accounting', session });
  assert.equal(line.user, 'alice');
  assert.equal(line.status, 1);
  let detail = '';
  for (let i = 0; i < 200 && !detail.includes(session); i++) {
    detail = fr.accountingDetail();
    if (!detail.includes(session)) await new Promise((res) => setTimeout(res, 10));
  }
  assert.match(detail, new RegExp(`Acct-Session-Id = "${session}"`));
  assert.match(detail, /Class = 0x757073747265616d2d636c617373/);

  // A wrong NAS secret: the Accounting-Request authenticator does not verify (RFC 2866 §3), no answer.
  const bad = await radclient({ 'User-Name': 'alice', 'Acct-Status-Type': 'Stop', 'Acct-Session-Id': session }, { port: s.acctPort, secret: 'wrong', type: 'acct', timeout: 0.5, messageAuthenticator: false });
  assert.equal(bad.code, 'timeout');
});

test('push after the upstream accepted: the upstream reply attributes come with the push approval', async (t) => {
  const s = await server(t, upstream([{ port: fr.port }]), { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', push: { timeout: '10s' } } });
  await enrollTotp(s.store, 'alice');
  const activation = await createActivation(s.store, s.config, 'alice', s.clock.now());
  const phone = await SimulatedPhone.activate(`http://127.0.0.1:${s.httpPort}`, activation.activation_code);
  const login = ask(s, { 'User-Name': 'alice', 'User-Password': USERS[0]!.password });
  await phone.answer((await phone.waitForPending(8000)).id, 'approve');
  const r = await login;
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.deepEqual(r.attributes['Class'], [hex('upstream-class')]);
  assert.deepEqual(r.attributes['Filter-Id'], ['from-upstream']);
});
