// End to end over real UDP sockets on loopback, driven by the real FreeRADIUS radclient wherever it can
// express the request; a raw UDP client (test/helpers/udp.ts) does the byte-level checks radclient cannot.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { Attr, Code, encodeAttribute } from '../src/radius/packet.js';
import { radclient, type AttributeInput, type RadclientOptions } from './helpers/radclient.js';
import { enrollTotp, startTestServer, wrongCodeAt, type StartOptions, type TestServer } from './helpers/server.js';
import { buildAccessRequest, decodeReply, UdpClient } from './helpers/udp.js';

const PASSWORD = 's3cret-Passw0rd';

async function server(t: TestContext, opts: StartOptions = {}): Promise<TestServer> {
  const s = await startTestServer(opts);
  t.after(() => s.close());
  return s;
}

async function udp(t: TestContext, host = '127.0.0.1'): Promise<UdpClient> {
  const c = await UdpClient.open(host);
  t.after(() => c.close());
  return c;
}

function ask(s: TestServer, attributes: AttributeInput, opts: Partial<RadclientOptions> = {}) {
  return radclient(attributes, { port: s.authPort, secret: s.secret, host: s.host, timeout: 5, ...opts });
}

test('password followed by the current code gets Access-Accept with the group reply attributes, Message-Authenticator first', async (t) => {
  const s = await server(t, {
    config: { groups: { staff: { members: ['alice'], reply: { 'Filter-Id': 'vpn-users', 'Session-Timeout': 3600 } } } },
  });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });

  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PASSWORD + alice.codeAt(s.clock.now()), 'NAS-Identifier': 'vpn-gw-1', 'Calling-Station-Id': '198.51.100.7' });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.deepEqual(r.attributes['Filter-Id'], ['vpn-users']);
  assert.deepEqual(r.attributes['Session-Timeout'], ['3600']);
  assert.equal(r.order[0], 'Message-Authenticator');

  const [audit] = s.logs.audits('alice');
  assert.equal(audit?.result, 'accept');
  assert.equal(audit?.reason, 'second_factor_ok');
  assert.equal(audit?.method, 'totp');
  assert.equal(audit?.client, 'test-nas');
  assert.equal(audit?.nas_id, 'vpn-gw-1');
  assert.equal(audit?.calling_station, '198.51.100.7');

  // Byte level: Message-Authenticator is the first attribute and both authenticators verify.
  s.clock.advance(30_000);
  const c = await udp(t);
  const req = buildAccessRequest({ secret: s.secret, userName: 'alice', password: PASSWORD + alice.codeAt(s.clock.now()) });
  const reply = await c.request(req, s.authPort);
  assert.ok(reply, 'no reply to the raw Access-Request');
  const { packet, verified } = decodeReply(reply.bytes, req, s.secret);
  assert.equal(packet.code, Code.AccessAccept);
  assert.ok(verified, 'Response Authenticator / Message-Authenticator do not verify');
  assert.equal(packet.attributes[0]?.type, Attr.MessageAuthenticator);
  assert.equal(packet.messageAuthenticatorOffset, 20);
});

test('Class (an octets attribute) can be configured as a group reply attribute and is sent in the Access-Accept', async (t) => {
  // Class is how most VPNs map users to group policies (RFC 2865 §5.25); YAML can only give it as text.
  const s = await server(t, { config: { groups: { staff: { members: ['alice'], reply: { Class: 'staff' } } } } });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PASSWORD + alice.codeAt(s.clock.now()) });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.deepEqual(r.attributes.Class, [`0x${Buffer.from('staff').toString('hex')}`]);
});

test('with separator "," the code follows "password,"; the right password alone asks for the separator, a wrong one does not', async (t) => {
  const s = await server(t, { config: { mfa: { totp: { separator: ',' } } } });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const code = alice.codeAt(s.clock.now());

  // Without the separator the whole field is the password: wrong, so nothing is told about the method.
  const bare = await ask(s, { 'User-Name': 'alice', 'User-Password': PASSWORD + code });
  assert.equal(bare.code, 'Access-Reject');
  assert.deepEqual(bare.attributes['Reply-Message'], ['Wrong username, password or code.']);
  assert.equal(s.logs.audits('alice')[0]?.reason, 'bad_password');
  const alone = await ask(s, { 'User-Name': 'alice', 'User-Password': PASSWORD });
  assert.match(alone.attributes['Reply-Message']?.join('') ?? '', /","/);
  assert.equal(s.logs.audits('alice')[1]?.reason, 'code_missing');

  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': `${PASSWORD},${code}` });
  assert.equal(r.code, 'Access-Accept', r.stdout);
});

test('a wrong code gets Access-Reject with a Reply-Message only after mfa.reject_delay, without holding up another user', async (t) => {
  // first_factor none: no argon2 time in the measurement, only the delay itself.
  const s = await server(t, { config: { first_factor: { type: 'none' }, mfa: { reject_delay: '300ms' } } });
  const alice = await enrollTotp(s.store, 'alice');
  const bob = await enrollTotp(s.store, 'bob');
  const now = s.clock.now();

  const r = await ask(s, { 'User-Name': 'bob', 'User-Password': PASSWORD + wrongCodeAt(bob, now) });
  assert.equal(r.code, 'Access-Reject', r.stdout);
  assert.equal(r.attributes['Reply-Message']?.join(''), 'Wrong username, password or code.');
  assert.ok(r.ms >= 300, `radclient had the reject after ${r.ms.toFixed(0)} ms, before the 300 ms reject_delay`);
  assert.equal(s.logs.audits('bob')[0]?.reason, 'bad_code');

  // On the wire: bob's reject leaves no earlier than 300 ms after his request, and alice, asking while
  // bob's reject is held (his decision is already logged), is answered before it.
  const c = await udp(t);
  const bobReq = buildAccessRequest({ secret: s.secret, userName: 'bob', password: PASSWORD + wrongCodeAt(bob, now) });
  const bobSent = performance.now();
  await c.send(bobReq, s.authPort);
  await s.logs.waitFor((l) => l.audit === true && l.user === 'bob' && l.q !== s.logs.audits('bob')[0]?.q);
  const aliceReq = buildAccessRequest({ secret: s.secret, userName: 'alice', password: PASSWORD + alice.codeAt(now) });
  await c.send(aliceReq, s.authPort);
  const firstReply = await c.next(2000);
  const secondReply = await c.next(2000);
  assert.ok(firstReply && secondReply, 'missing replies');
  assert.equal(decodeReply(firstReply.bytes, aliceReq, s.secret).packet.code, Code.AccessAccept, "alice's accept came after bob's reject");
  assert.equal(decodeReply(secondReply.bytes, bobReq, s.secret).packet.code, Code.AccessReject);
  assert.ok(secondReply.at - bobSent >= 300, `raw reject after ${(secondReply.at - bobSent).toFixed(1)} ms`);
  assert.ok(firstReply.at < secondReply.at, "alice's accept arrived after bob's reject");
});

test('a request signed with the wrong shared secret gets no reply and one rate-limited log line', async (t) => {
  const s = await server(t);
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PASSWORD + alice.codeAt(s.clock.now()) }, { secret: 'not-the-secret', timeout: 0.5 });
  assert.equal(r.code, 'timeout', r.stdout);
  const warned = () => s.logs.filter({ reason: 'bad_message_authenticator' });
  assert.equal(warned().length, 1);
  assert.equal(warned()[0]?.level, 'warn');

  // A flood within the interval adds no lines; the next line after it says how many were suppressed.
  const c = await udp(t);
  for (let i = 0; i < 20; i++) await c.send(buildAccessRequest({ secret: 'not-the-secret', userName: 'alice', password: 'x' }), s.authPort);
  await waitUntil(() => s.app.server.counters.dropped >= 21);
  assert.equal(warned().length, 1);
  s.clock.advance(10_000);
  await c.send(buildAccessRequest({ secret: 'not-the-secret', userName: 'alice', password: 'x' }), s.authPort);
  await waitUntil(() => s.app.server.counters.dropped >= 22);
  assert.equal(warned().length, 2);
  assert.equal(warned()[1]?.suppressed, 20);
  assert.equal(c.received.length, 0);
  assert.equal(s.logs.audits().length, 0);
});

test('an Access-Request without Message-Authenticator is dropped when the client requires it (the default)', async (t) => {
  const s = await server(t);
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PASSWORD + alice.codeAt(s.clock.now()) }, { messageAuthenticator: false, timeout: 0.5 });
  assert.equal(r.code, 'timeout', r.stdout);
  assert.equal(s.logs.filter({ reason: 'missing_message_authenticator' }).length, 1);
  assert.equal(s.logs.audits().length, 0);
});

test('the same client with require_message_authenticator: false is answered, and the start logs a warning', async (t) => {
  const s = await server(t, { config: { clients: [{ name: 'legacy-nas', address: '127.0.0.1', secret: 'legacy-secret-1234567', require_message_authenticator: false }] } });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const r = await radclient({ 'User-Name': 'alice', 'User-Password': PASSWORD + alice.codeAt(s.clock.now()) }, {
    port: s.authPort,
    secret: 'legacy-secret-1234567',
    messageAuthenticator: false,
  });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.equal(r.order[0], 'Message-Authenticator');
  assert.equal(s.logs.filter((l) => l.level === 'warn' && l.client === 'legacy-nas' && /BlastRADIUS/.test(String(l.msg))).length, 1, 'one BlastRADIUS warning at start');
});

test('a legacy client without Message-Authenticator may not send Proxy-State (BlastRADIUS limit_proxy_state)', async (t) => {
  const s = await server(t, { config: { clients: [{ name: 'legacy-nas', address: '127.0.0.1', secret: 'legacy-secret-1234567', require_message_authenticator: false }] } });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const r = await radclient({ 'User-Name': 'alice', 'User-Password': PASSWORD + alice.codeAt(s.clock.now()), 'Proxy-State': '0x01' }, {
    port: s.authPort,
    secret: 'legacy-secret-1234567',
    messageAuthenticator: false,
    timeout: 0.5,
  });
  assert.equal(r.code, 'timeout', r.stdout);
  assert.equal(s.logs.filter({ reason: 'proxy_state_without_message_authenticator' }).length, 1);
});

test('a datagram from an address that is no configured client is dropped', async (t) => {
  // 127.0.0.2 exactly and 10/8 as a CIDR: neither covers 127.0.0.1, where radclient sends from.
  const s = await server(t, { config: { clients: [{ name: 'elsewhere', address: ['127.0.0.2', '10.0.0.0/8'], secret: 'elsewhere-secret-123' }] } });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const r = await radclient({ 'User-Name': 'alice', 'User-Password': PASSWORD + alice.codeAt(s.clock.now()) }, {
    port: s.authPort,
    secret: 'elsewhere-secret-123',
    timeout: 0.5,
  });
  assert.equal(r.code, 'timeout', r.stdout);
  const [line] = s.logs.filter({ reason: 'unknown_client' });
  assert.equal(line?.level, 'warn');
  assert.match(String(line?.from), /^127\.0\.0\.1:\d+$/);
  assert.equal(s.logs.audits().length, 0);
});

test('the same code twice: the second attempt is rejected and audited as a replay', async (t) => {
  const s = await server(t);
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const input = { 'User-Name': 'alice', 'User-Password': PASSWORD + alice.codeAt(s.clock.now()) };
  assert.equal((await ask(s, input)).code, 'Access-Accept');
  s.clock.advance(5_000);
  const again = await ask(s, input);
  assert.equal(again.code, 'Access-Reject');
  assert.match(again.attributes['Reply-Message']?.join('') ?? '', /already used/);
  assert.deepEqual(
    s.logs.audits('alice').map((a) => [a.result, a.reason]),
    [
      ['accept', 'second_factor_ok'],
      ['reject', 'replay'],
    ],
  );
});

test('wrong codes after the right password count twice: the second of max_failures 3 locks, a right code is then refused, and store.unlockUser ends it', async (t) => {
  const s = await server(t, { config: { mfa: { lockout: { max_failures: 3, duration: '15m' } } } });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const wrong = { 'User-Name': 'alice', 'User-Password': PASSWORD + wrongCodeAt(alice, s.clock.now()) };
  const replies = [];
  for (let i = 0; i < 2; i++) replies.push(await ask(s, wrong));
  assert.deepEqual(replies.map((r) => r.code), ['Access-Reject', 'Access-Reject']);
  assert.match(replies[1]!.attributes['Reply-Message']?.join('') ?? '', /locked/);
  const warned = s.logs.filter({ reason: 'bad_code', alert: 'possible_stolen_password' });
  assert.equal(warned.length, 2, 'each wrong code after a right password is a warn line');
  assert.equal(warned[0]?.level, 'warn');
  const locked = await s.store.getUser('alice');
  assert.equal(locked?.lockedUntil, s.clock.now() + 15 * 60_000);

  s.clock.advance(30_000);
  const right = () => ({ 'User-Name': 'alice', 'User-Password': PASSWORD + alice.codeAt(s.clock.now()) });
  const refused = await ask(s, right());
  assert.equal(refused.code, 'Access-Reject');
  // Before the password is checked a lock reads like a wrong password: no state oracle for a guesser.
  assert.deepEqual(refused.attributes['Reply-Message'], ['Wrong username, password or code.']);
  assert.equal(s.logs.audits('alice').at(-1)?.reason, 'locked');
  assert.equal(s.logs.audits('alice').at(-1)?.method, 'totp');

  assert.equal(await s.store.unlockUser('alice'), true);
  const ok = await ask(s, right());
  assert.equal(ok.code, 'Access-Accept', ok.stdout);
});

test('challenge method: Access-Challenge with State and Reply-Message, then the code with that State is accepted once', async (t) => {
  const s = await server(t, { config: { mfa: { challenge: { timeout: '60s', prompt: 'Enter your code' } } } });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD, method: 'challenge' });

  const first = await ask(s, { 'User-Name': 'alice', 'User-Password': PASSWORD });
  assert.equal(first.code, 'Access-Challenge', first.stdout);
  assert.deepEqual(first.attributes['Reply-Message'], ['Enter your code']);
  const state = first.attributes.State?.[0];
  // Printable text (base64url of 18 random octets): ocserv cuts a State at its first 0x00 (test/challenge-state.test.ts).
  assert.match(Buffer.from((state ?? '').slice(2), 'hex').toString('latin1'), /^[A-Za-z0-9_-]{24}$/);
  assert.equal(first.order[0], 'Message-Authenticator');

  s.clock.advance(10_000);
  const answer = { 'User-Name': 'alice', 'User-Password': alice.codeAt(s.clock.now()), State: state! };
  const second = await ask(s, answer);
  assert.equal(second.code, 'Access-Accept', second.stdout);

  const reused = await ask(s, answer);
  assert.equal(reused.code, 'Access-Reject');
  assert.deepEqual(
    s.logs.audits('alice').map((a) => [a.result, a.reason]),
    [
      ['challenge', 'code_requested'],
      ['accept', 'second_factor_ok'],
      ['reject', 'bad_state'],
    ],
  );
});

test('challenge method: a State answered after mfa.challenge.timeout is rejected', async (t) => {
  const s = await server(t, { config: { mfa: { challenge: { timeout: '60s' } } } });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD, method: 'challenge' });
  const first = await ask(s, { 'User-Name': 'alice', 'User-Password': PASSWORD });
  assert.equal(first.code, 'Access-Challenge');
  s.clock.advance(60_001);
  const late = await ask(s, { 'User-Name': 'alice', 'User-Password': alice.codeAt(s.clock.now()), State: first.attributes.State![0]! });
  assert.equal(late.code, 'Access-Reject');
  assert.equal(s.logs.audits('alice').at(-1)?.reason, 'bad_state');
});

test('method none accepts on the password alone and is audited as method_none; method deny rejects', async (t) => {
  const s = await server(t, { config: { users: { carol: { method: 'none' } }, groups: { banned: { members: ['dave'], method: 'deny' } } } });
  await enrollTotp(s.store, 'carol', { password: PASSWORD, enroll: false });
  await enrollTotp(s.store, 'dave', { password: PASSWORD });

  const carol = await ask(s, { 'User-Name': 'carol', 'User-Password': PASSWORD });
  assert.equal(carol.code, 'Access-Accept', carol.stdout);
  assert.equal(s.logs.audits('carol')[0]?.reason, 'method_none');
  assert.equal(s.logs.audits('carol')[0]?.method, 'none');
  const carolWrong = await ask(s, { 'User-Name': 'carol', 'User-Password': 'wrong-password' });
  assert.equal(carolWrong.code, 'Access-Reject');

  const dave = await ask(s, { 'User-Name': 'dave', 'User-Password': PASSWORD + '000000' });
  assert.equal(dave.code, 'Access-Reject');
  // Decided before any password check, so it reads like a wrong password.
  assert.deepEqual(dave.attributes['Reply-Message'], ['Wrong username, password or code.']);
  assert.equal(s.logs.audits('dave')[0]?.reason, 'method_deny');
});

test('Status-Server is answered with Access-Accept on the auth port and Accounting-Response on the acct port', async (t) => {
  const s = await server(t);
  const auth = await ask(s, {}, { type: 'status' });
  assert.equal(auth.code, 'Access-Accept', auth.stdout);
  assert.equal(auth.order[0], 'Message-Authenticator');
  const acct = await ask(s, {}, { type: 'status', port: s.acctPort });
  assert.equal(acct.code, 'Accounting-Response', acct.stdout);
  assert.equal(s.logs.audits().length, 0);
});

test('an Accounting-Request on the acct port gets Accounting-Response and an accounting log line', async (t) => {
  const s = await server(t);
  const r = await radclient(
    { 'User-Name': 'alice', 'Acct-Status-Type': 'Start', 'Acct-Session-Id': 'sess-42', 'NAS-Identifier': 'vpn-gw-1', 'NAS-IP-Address': '192.0.2.10' },
    { port: s.acctPort, secret: s.secret, type: 'acct', messageAuthenticator: false },
  );
  assert.equal(r.code, 'Accounting-Response', r.stdout);
  const [line] = s.logs.filter({ msg: 'accounting' });
  assert.deepEqual(
    { user: line?.user, status: line?.status, session: line?.session, nas_id: line?.nas_id, nas_ip: line?.nas_ip, client: line?.client },
    { user: 'alice', status: 1, session: 'sess-42', nas_id: 'vpn-gw-1', nas_ip: '192.0.2.10', client: 'test-nas' },
  );
});

test('Proxy-State attributes are copied into the reply unchanged and in order', async (t) => {
  const s = await server(t);
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const states = ['0x01', '0x0203', '0xfffefd00'];
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PASSWORD + alice.codeAt(s.clock.now()), 'Proxy-State': states });
  assert.equal(r.code, 'Access-Accept');
  assert.deepEqual(r.attributes['Proxy-State'], states);

  // Also on a reject, checked byte for byte.
  const c = await udp(t);
  const values = [Buffer.from('first'), Buffer.alloc(0), Buffer.from([0, 1, 2, 3]), Buffer.alloc(253, 0xaa)];
  const req = buildAccessRequest({ secret: s.secret, userName: 'alice', password: 'no-code-here', attributes: values.map((v) => [Attr.ProxyState, v] as const) });
  const reply = await c.request(req, s.authPort);
  assert.ok(reply, 'no reply');
  const { packet, verified } = decodeReply(reply.bytes, req, s.secret);
  assert.ok(verified, 'reply does not verify');
  assert.equal(packet.code, Code.AccessReject);
  assert.deepEqual(
    packet.attributes.filter((a) => a.type === Attr.ProxyState).map((a) => a.value),
    values,
  );
});

test('duplicates: ten copies while the first is held get exactly one reply; a later copy gets the cached reply bytes', async (t) => {
  const s = await server(t, { config: { mfa: { reject_delay: '400ms' } } });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const c = await udp(t);
  const req = buildAccessRequest({ secret: s.secret, userName: 'alice', password: PASSWORD + wrongCodeAt(alice, s.clock.now()), identifier: 77 });

  const sentAt = performance.now();
  for (let i = 0; i < 10; i++) await c.send(req, s.authPort);
  const first = await c.next(3000);
  assert.ok(first, 'no reply');
  assert.ok(first.at - sentAt >= 400, `reply after ${(first.at - sentAt).toFixed(0)} ms, before the 400 ms reject delay`);
  // Nothing else may arrive: wait as long again as the delay, then count.
  assert.equal(await c.next(500), undefined);
  assert.equal(c.received.length, 1);
  assert.equal(s.app.server.counters.duplicates, 9);
  assert.equal(s.logs.audits('alice').length, 1, 'one decision per request');

  const againAt = performance.now();
  await c.send(req, s.authPort);
  const resent = await c.next(1000);
  assert.ok(resent, 'no re-sent reply');
  // Decided again, it would wait out the 400 ms reject delay.
  assert.ok(resent.at - againAt < 400, 'the cached reply is re-sent at once, not decided again');
  assert.deepEqual(resent.bytes, first.bytes);
  assert.equal(s.app.server.counters.resent, 1);
  assert.equal(s.logs.audits('alice').length, 1);
  assert.equal(decodeReply(first.bytes, req, s.secret).packet.code, Code.AccessReject);
});

test('duplicates: radclient retransmissions of a held request are not decided again', async (t) => {
  const s = await server(t, { config: { mfa: { reject_delay: '1500ms' } } });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  // radclient re-sends the identical datagram on whole-second ticks (observed: ~0.6 s, then every 1 s).
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PASSWORD + wrongCodeAt(alice, s.clock.now()) }, { timeout: 0.2, tries: 5 });
  assert.equal(r.code, 'Access-Reject', r.stdout);
  assert.ok(s.app.server.counters.duplicates >= 1, `radclient sent no retransmission (${r.ms.toFixed(0)} ms)`);
  assert.equal(s.logs.audits('alice').length, 1);
});

test('a User-Password of 128 octets (the RFC 2865 maximum) works', async (t) => {
  const s = await server(t);
  const password = 'p'.repeat(61) + 'Q'.repeat(61); // 122 + 6 digits = 128 octets
  const alice = await enrollTotp(s.store, 'alice', { password });
  const typed = password + alice.codeAt(s.clock.now());
  assert.equal(Buffer.byteLength(typed), 128);
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': typed });
  assert.equal(r.code, 'Access-Accept', r.stdout);
});

test('a malformed datagram from a client is dropped with a log line and the server still answers', async (t) => {
  const s = await server(t);
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const c = await udp(t);
  const good = buildAccessRequest({ secret: s.secret, userName: 'alice', password: PASSWORD + alice.codeAt(s.clock.now()) });
  const truncated = Buffer.from(good.subarray(0, good.length - 5));
  const badAttr = Buffer.from(good);
  badAttr[21] = 1; // User-Name length 1: below the minimum of 2
  await c.send(truncated, s.authPort);
  await c.send(badAttr, s.authPort);
  await waitUntil(() => s.app.server.counters.dropped >= 2);
  assert.equal(s.logs.filter({ reason: 'truncated' }).length, 1);
  assert.equal(s.logs.filter({ reason: 'attribute_overrun' }).length, 1);
  const reply = await c.request(good, s.authPort);
  assert.ok(reply, 'no reply to the valid request');
  assert.equal(decodeReply(reply.bytes, good, s.secret).packet.code, Code.AccessAccept);
  assert.equal(c.received.length, 1);
});

test('an Accounting-Request whose Acct-Status-Type is not 4 octets is still answered, without a "bug" error', async (t) => {
  const s = await server(t);
  const c = await udp(t);
  // RFC 2866 §5.1 says 4 octets; a NAS (or a bit flip) sending 2 must not make the server fail the request.
  const body = Buffer.concat([encodeAttribute(Attr.UserName, 'alice'), encodeAttribute(Attr.AcctStatusType, Buffer.from([0, 1])), encodeAttribute(Attr.AcctSessionId, 's-2')]);
  const req = Buffer.alloc(20 + body.length);
  req[0] = Code.AccountingRequest;
  req[1] = 9;
  req.writeUInt16BE(req.length, 2);
  body.copy(req, 20);
  createHash('md5').update(req).update(s.secret).digest().copy(req, 4); // RFC 2866 §3 Request Authenticator
  const reply = await c.request(req, s.acctPort, '127.0.0.1', 1000);
  assert.deepEqual(s.logs.filter((l) => l.level === 'error').map((l) => l.msg), []);
  assert.equal(s.app.server.counters.errors, 0);
  assert.ok(reply, 'no Accounting-Response');
  assert.equal(decodeReply(reply.bytes, req, s.secret).packet.code, Code.AccountingResponse);
});

test('a signed request whose Proxy-States would make the reply exceed 4096 octets neither crashes nor stalls the server', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  const s = await server(t, { config: { first_factor: { type: 'none' } } });
  const alice = await enrollTotp(s.store, 'alice');
  const c = await udp(t);
  // 4027 octets of Proxy-State (RFC 2865 §5.33: to be copied unmodified into the reply): a legal 4073-octet
  // request, but with Message-Authenticator and a Reply-Message the reply cannot fit.
  const proxyStates: [number, Buffer][] = [...Array.from({ length: 15 }, (_, i) => Buffer.alloc(253, i)), Buffer.alloc(200, 0xee)].map((v) => [Attr.ProxyState, v]);
  const big = buildAccessRequest({ secret: s.secret, userName: 'nobody', attributes: proxyStates });
  assert.equal(big.length, 4073);
  await c.send(big, s.authPort);
  await waitUntil(() => s.app.server.counters.received >= 1);
  await new Promise((r) => setTimeout(r, 50));

  const req = buildAccessRequest({ secret: s.secret, userName: 'alice', password: 'pw' + alice.codeAt(s.clock.now()) });
  const reply = await c.request(req, s.authPort, '127.0.0.1', 1000);
  assert.deepEqual(unhandled.map(String), [], 'unhandled rejection: under Node 20 defaults this exits the server process');
  assert.deepEqual(s.logs.filter((l) => l.level === 'error').map((l) => l.msg), [], 'an oversized reply is a drop, not a bug');
  assert.ok(reply, 'no reply to the next request');
  assert.equal(decodeReply(reply.bytes, req, s.secret).packet.code, Code.AccessAccept);
});

test('a flood of requests whose reply cannot fit its Proxy-States logs one rate-limited line, not one per request', async (t) => {
  const s = await server(t, { config: { first_factor: { type: 'none' } } });
  const c = await udp(t);
  const proxyStates: [number, Buffer][] = [...Array.from({ length: 15 }, (_, i) => Buffer.alloc(253, i)), Buffer.alloc(200, 0xee)].map((v) => [Attr.ProxyState, v]);
  for (let i = 0; i < 20; i++) await c.send(buildAccessRequest({ secret: s.secret, userName: 'nobody', attributes: proxyStates }), s.authPort);
  await waitUntil(() => s.app.server.counters.received >= 20);
  await waitUntil(() => s.app.server.counters.dropped >= 20);
  const lines = s.logs.filter((l) => l.reason === 'reply_too_large' || /4096/.test(String(l.msg)));
  assert.equal(lines.length, 1, `${lines.length} log lines for 20 oversized replies within the 10 s rate-limit interval`);
});

test('a server listening on [::1] answers radclient -6', async (t) => {
  const why = await ipv6LoopbackUnavailable();
  if (why) {
    t.diagnostic(`skipped: ${why}`);
    t.skip(`cannot bind ::1 here: ${why}`);
    return;
  }
  const s = await server(t, { host: '::1' });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PASSWORD + alice.codeAt(s.clock.now()) }, { ipv6: true });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.equal(s.logs.audits('alice')[0]?.src, '::1');
});

async function ipv6LoopbackUnavailable(): Promise<string | undefined> {
  const socket = createSocket({ type: 'udp6', ipv6Only: true });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '::1', () => resolve());
    });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    try {
      socket.close();
    } catch {
      // never bound
    }
  }
}

/** Polls a condition on the event loop (the server runs in this process), at most 2 s / 400 turns. */
async function waitUntil(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (let i = 0; i < 400 && performance.now() < deadline; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(cond(), `condition not met within ${timeoutMs} ms`);
}
