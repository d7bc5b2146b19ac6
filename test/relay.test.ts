// Beyond PAP, against a real FreeRADIUS 3.2 upstream: the NAS's attributes go upstream; MS-CHAPv2 (built
// with the RFC 2759 algorithms), MS-CHAPv1 and CHAP (built by the real radclient) and EAP (the real
// eapol_test: PEAP-MSCHAPv2, EAP-TTLS/PAP) are relayed as they are; the push is held after the upstream's
// Accept; MPPE keys re-hidden for the NAS are the ones the upstream derived.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { encodeResponse } from '../src/radius/crypto.js';
import { createActivation } from '../src/mfa/activation.js';
import { Attr, Code, decodePacket, encodeAttribute } from '../src/radius/packet.js';
import { eapol } from './helpers/eapol.js';
import { startFreeradius, type Freeradius } from './helpers/freeradius.js';
import { authenticatorResponse, generateNtResponse, mppeKeys, msChap2Response } from './helpers/mschapv2.js';
import { SimulatedPhone } from './helpers/phone.js';
import { radclient, type AttributeInput } from './helpers/radclient.js';
import { enrollTotp, startTestServer, type ConfigInput, type TestServer } from './helpers/server.js';
import { makeTestPki, type TestPki } from './helpers/tls-certs.js';
import { buildAccessRequest, UdpClient } from './helpers/udp.js';

const UP_SECRET = 'upstream-Secret-1';
const USERS = [
  { name: 'alice', password: 'alice-Passw0rd' },
  { name: 'carol', password: 'carol-Passw0rd' },
  { name: 'dave', password: 'dave-Passw0rd' },
  { name: 'erin', password: 'erin-Passw0rd', reply: ['Tunnel-Type := L2TP', 'Tunnel-Password := "tunnel-Secret-1"'] },
];
let pki: TestPki;
let fr: Freeradius;
let frAnon: Freeradius;

before(async () => {
  pki = makeTestPki();
  const eap = { cert: pki.server.cert, key: pki.server.key, ca: pki.ca };
  [fr, frAnon] = await Promise.all([startFreeradius({ secret: UP_SECRET, users: USERS, eap }), startFreeradius({ secret: UP_SECRET, users: USERS, eap, innerIdentity: false })]);
});
after(async () => {
  await fr?.stop();
  await frAnon?.stop();
  pki?.remove();
});

function upstream(f: Freeradius, over: ConfigInput = {}): ConfigInput {
  return { type: 'radius', servers: [{ address: `127.0.0.1:${f.port}`, secret: UP_SECRET }], timeout: '2s', retries: 0, ...over };
}

async function server(t: TestContext, config: ConfigInput = {}, f: Freeradius = fr): Promise<TestServer> {
  const s = await startTestServer({
    config: { first_factor: upstream(f), http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', push: { timeout: '5s' } }, ...config },
  });
  t.after(() => s.close());
  return s;
}

async function phoneFor(s: TestServer, username: string, method: 'push' | 'totp' | null = null): Promise<SimulatedPhone> {
  await enrollTotp(s.store, username, { method });
  const activation = await createActivation(s.store, s.config, username, s.clock.now());
  return SimulatedPhone.activate(`http://127.0.0.1:${s.httpPort}`, activation.activation_code);
}

const hex = (b: Buffer | string) => '0x' + Buffer.from(b).toString('hex');

/** An MS-CHAPv2 request as a NAS builds it from its peer's answer (RFC 2759 §8, RFC 2548 §2.3.2). */
function msChapV2(user: string, password: string, extra: AttributeInput = {}) {
  const authChallenge = randomBytes(16);
  const peerChallenge = randomBytes(16);
  const nt = generateNtResponse(authChallenge, peerChallenge, user, password);
  return {
    attributes: { 'User-Name': user, 'MS-CHAP-Challenge': hex(authChallenge), 'MS-CHAP2-Response': hex(msChap2Response(9, peerChallenge, nt)), ...extra } as AttributeInput,
    success: hex(Buffer.concat([Buffer.from([9]), Buffer.from(authenticatorResponse(password, nt, peerChallenge, authChallenge, user))])),
    keys: mppeKeys(password, nt),
  };
}

/** Audit lines of decisions (not of device events). */
const decisions = (s: TestServer, user?: string) => s.logs.audits(user).filter((a) => a.msg === 'decision');

const ask = (s: TestServer, attributes: AttributeInput, timeout = 8) => radclient(attributes, { port: s.authPort, secret: s.secret, timeout });

/** The detail record FreeRADIUS wrote for the request whose Calling-Station-Id is `marker`. */
function upstreamRecord(f: Freeradius, marker: string): string {
  return f.authDetail().split(/\n\n/).find((r) => r.includes(`Calling-Station-Id = "${marker}"`)) ?? '';
}

test("the NAS's attributes go upstream with a PAP request; config drops and adds some", async (t) => {
  const s = await server(t, { mfa: { default_method: 'none' } });
  const nas = {
    'NAS-IP-Address': '192.0.2.10',
    'NAS-Identifier': 'vpn-gw-1',
    'NAS-Port': 17,
    'NAS-Port-Type': 'Virtual',
    'Called-Station-Id': 'vpn.example.com',
    'Service-Type': 'Framed-User',
    'Framed-Protocol': 'PPP',
    'Cisco-AVPair': 'shell:priv-lvl=1',
  };
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': 'alice-Passw0rd', 'Calling-Station-Id': 'marker-1', ...nas });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  const record = upstreamRecord(fr, 'marker-1');
  for (const line of [
    'NAS-IP-Address = 192.0.2.10',
    'NAS-Identifier = "vpn-gw-1"',
    'NAS-Port = 17',
    'NAS-Port-Type = Virtual',
    'Called-Station-Id = "vpn.example.com"',
    'Service-Type = Framed-User',
    'Framed-Protocol = PPP',
    'Cisco-AVPair = "shell:priv-lvl=1"',
  ]) {
    assert.ok(record.includes(line), `upstream did not receive ${line}:\n${record}`);
  }
  assert.ok(!record.includes('"radius-mfa"'), 'our NAS-Identifier is only a fallback');

  const s2 = await server(t, { first_factor: upstream(fr, { request_attributes: { drop: ['Cisco-AVPair', 'NAS-Port'], add: { 'NAS-Port-Id': 'via-mfa' } }, nas_identifier: 'mfa-1' }), mfa: { default_method: 'none' } });
  const { 'NAS-Identifier': _dropped, ...noNasId } = nas;
  const r2 = await ask(s2, { 'User-Name': 'alice', 'User-Password': 'alice-Passw0rd', 'Calling-Station-Id': 'marker-2', ...noNasId });
  assert.equal(r2.code, 'Access-Accept', r2.stdout);
  const record2 = upstreamRecord(fr, 'marker-2');
  assert.ok(!record2.includes('Cisco-AVPair') && !/NAS-Port = /.test(record2), record2);
  assert.ok(record2.includes('NAS-Port-Id = "via-mfa"') && record2.includes('NAS-Identifier = "mfa-1"') && record2.includes('NAS-Port-Type = Virtual'), record2);
});

test('Tunnel-Password (RFC 2868 §3.5) from the upstream Accept of a PAP request is re-hidden for the NAS, not dropped', async (t) => {
  const s = await server(t, { mfa: { default_method: 'none' } });
  const r = await ask(s, { 'User-Name': 'erin', 'User-Password': 'erin-Passw0rd' });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  const shown = Object.entries(r.attributes).find(([k]) => k.startsWith('Tunnel-Password'));
  assert.deepEqual(shown?.[1], ['tunnel-Secret-1'], r.stdout);
});

test('Tunnel-Password after our own Access-Challenge is re-hidden for the request that gets the Accept', async (t) => {
  const s = await server(t, { users: { erin: { method: 'challenge' } } });
  const erin = await enrollTotp(s.store, 'erin');
  const first = await ask(s, { 'User-Name': 'erin', 'User-Password': 'erin-Passw0rd' });
  assert.equal(first.code, 'Access-Challenge', first.stdout);
  const r = await ask(s, { 'User-Name': 'erin', 'User-Password': erin.codeAt(s.clock.now()), State: first.attributes['State']![0]! });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  // radclient decrypts with the second request's authenticator: it reads the secret only if we re-hid it for that one.
  const shown = Object.entries(r.attributes).find(([k]) => k.startsWith('Tunnel-Password'));
  assert.deepEqual(shown?.[1], ['tunnel-Secret-1'], r.stdout);
});

test('MS-CHAPv2: accepted after the phone approves, with MS-CHAP2-Success and the MPPE keys the upstream derived', async (t) => {
  const s = await server(t);
  const phone = await phoneFor(s, 'alice');
  const m = msChapV2('alice', 'alice-Passw0rd', { 'NAS-Port-Type': 'Virtual', 'Calling-Station-Id': 'marker-ms2' });
  const login = ask(s, m.attributes);
  const pending = await phone.waitForPending(8000);
  assert.equal(pending.username, 'alice');
  await phone.answer(pending.id, 'approve');
  const r = await login;
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.deepEqual(r.attributes['MS-CHAP2-Success'], [m.success]);
  // radclient decrypted these with the NAS's secret and Request Authenticator: RFC 3079 says what they must be.
  assert.deepEqual(r.attributes['MS-MPPE-Send-Key'], [hex(m.keys.send)]);
  assert.deepEqual(r.attributes['MS-MPPE-Recv-Key'], [hex(m.keys.recv)]);
  assert.equal(r.order[0], 'Message-Authenticator');
  assert.ok(upstreamRecord(fr, 'marker-ms2').includes('NAS-Port-Type = Virtual'));
  const audit = decisions(s, 'alice').find((a) => a.result === 'accept');
  assert.equal(audit?.reason, 'push_approved');
});

test('MS-CHAPv2: a denied push answers MS-CHAP-Error; a wrong password is the upstream refusal and sends no push', async (t) => {
  const s = await server(t);
  const phone = await phoneFor(s, 'alice');
  const denied = ask(s, msChapV2('alice', 'alice-Passw0rd').attributes);
  await phone.answer((await phone.waitForPending(8000)).id, 'deny');
  const r = await denied;
  assert.equal(r.code, 'Access-Reject', r.stdout);
  // Ident 9 (the MS-CHAP2-Response's, a tab as radclient prints it), then RFC 2759 §6 "E=691 R=0 C=... V=3".
  assert.match(r.attributes['MS-CHAP-Error']?.[0] ?? '', /^\\tE=691 R=0 C=[0-9A-F]{32} V=3$/);
  assert.equal(r.attributes['MS-MPPE-Send-Key'], undefined);
  const wrong = await ask(s, msChapV2('alice', 'not-the-password').attributes);
  assert.equal(wrong.code, 'Access-Reject');
  assert.ok(wrong.attributes['MS-CHAP-Error'], wrong.stdout);
  assert.deepEqual((await phone.pending()).body, []);
  assert.deepEqual(
    decisions(s, 'alice').map((a) => a.reason),
    ['push_denied', 'bad_password'],
  );
});

test('MS-CHAPv1 and CHAP (built by radclient) pass through; a CHAP challenge that was the Request Authenticator goes as CHAP-Challenge', async (t) => {
  const s = await server(t, { mfa: { default_method: 'none' } });
  const v1 = await ask(s, { 'User-Name': 'alice', 'MS-CHAP-Password': 'alice-Passw0rd' });
  assert.equal(v1.code, 'Access-Accept', v1.stdout);
  assert.ok(v1.attributes['MS-CHAP-MPPE-Keys'], 'MS-CHAPv1 keys re-hidden for the NAS');
  const chap = await ask(s, { 'User-Name': 'alice', 'CHAP-Password': 'alice-Passw0rd', 'Calling-Station-Id': 'marker-chap' });
  assert.equal(chap.code, 'Access-Accept', chap.stdout);
  assert.ok(upstreamRecord(fr, 'marker-chap').includes('CHAP-Challenge = 0x'));
  const bad = await ask(s, { 'User-Name': 'alice', 'CHAP-Password': 'wrong' });
  assert.equal(bad.code, 'Access-Reject');
});

test('the local first factor refuses MS-CHAP and EAP with their own reason and a log line naming the fix', async (t) => {
  const s = await server(t, { first_factor: { type: 'local' } });
  await enrollTotp(s.store, 'alice', { password: 'alice-Passw0rd' });
  const r = await ask(s, msChapV2('alice', 'alice-Passw0rd').attributes);
  assert.equal(r.code, 'Access-Reject');
  assert.ok(r.attributes['MS-CHAP-Error']);
  assert.equal(decisions(s, 'alice')[0]?.reason, 'non_pap_unsupported');
  const hint = await s.logs.waitFor({ reason: 'non_pap_unsupported', level: 'warn' });
  assert.match(String(hint.msg), /upstream RADIUS server/);
  const eap = await eapol({ port: s.authPort, secret: s.secret, method: 'PEAP', identity: 'alice', password: 'alice-Passw0rd', ca: pki.ca, timeout: 5 });
  assert.equal(eap.success, false);
  assert.equal(decisions(s, 'anonymous')[0]?.reason, 'non_pap_unsupported');
});

test('mfa.non_pap: a totp user gets a push instead (its own reason), or is refused', async (t) => {
  const s = await server(t, { mfa: { default_method: 'totp', push: { timeout: '5s' }, non_pap: 'push' } });
  const phone = await phoneFor(s, 'carol');
  const login = ask(s, msChapV2('carol', 'carol-Passw0rd').attributes);
  await phone.answer((await phone.waitForPending(8000)).id, 'approve');
  assert.equal((await login).code, 'Access-Accept');
  assert.deepEqual(decisions(s, 'carol').map((a) => a.reason), ['non_pap_push_fallback'], s.logs.lines.join('\n'));
  await s.logs.waitFor({ reason: 'non_pap_push_fallback', level: 'warn' });

  const s2 = await server(t, { mfa: { default_method: 'totp', non_pap: 'reject' } });
  await enrollTotp(s2.store, 'carol');
  const r = await ask(s2, msChapV2('carol', 'carol-Passw0rd').attributes);
  assert.equal(r.code, 'Access-Reject');
  assert.ok(r.attributes['MS-CHAP-Error']);
  assert.equal(decisions(s2, 'carol')[0]?.reason, 'non_pap_needs_code');
});

test('PEAP-MSCHAPv2 and EAP-TTLS/PAP through us: success after the phone approves, MPPE keys checked by eapol_test', async (t) => {
  const s = await server(t);
  const phone = await phoneFor(s, 'alice');
  for (const method of ['PEAP', 'TTLS'] as const) {
    const run = eapol({ port: s.authPort, secret: s.secret, method, identity: 'alice', password: 'alice-Passw0rd', ca: pki.ca });
    const pending = await phone.waitForPending(10_000);
    assert.equal(pending.username, 'alice', 'the push goes to the inner identity');
    await phone.answer(pending.id, 'approve');
    const r = await run;
    assert.ok(r.success, `${method}: ${r.output.slice(-2000)}`);
    assert.ok(r.mppeKeysOk, `${method}: MPPE keys`);
    // The inner identity the upstream named reaches the NAS in the Access-Accept (for its accounting).
    assert.match(r.output, /Attribute 1 \(User-Name\) length=7\s+Value: 'alice'/, `${method}: User-Name`);
  }
  const accepts = decisions(s, 'alice').filter((a) => a.result === 'accept');
  assert.deepEqual(
    accepts.map((a) => a.reason),
    ['push_approved', 'push_approved'],
  );
  assert.ok(decisions(s, 'anonymous').every((a) => a.reason === 'upstream_round'));
});

test('PEAP: fails after deny, after the push timeout, and after a wrong password (no push then)', async (t) => {
  const s = await server(t, { mfa: { default_method: 'push', push: { timeout: '1500ms' } } });
  const phone = await phoneFor(s, 'alice');
  const run = eapol({ port: s.authPort, secret: s.secret, method: 'PEAP', identity: 'alice', password: 'alice-Passw0rd', ca: pki.ca });
  await phone.answer((await phone.waitForPending(10_000)).id, 'deny');
  const denied = await run;
  assert.equal(denied.success, false);
  assert.match(denied.output, /EAP-Failure|CTRL-EVENT-EAP-FAILURE/);
  const timedOut = await eapol({ port: s.authPort, secret: s.secret, method: 'PEAP', identity: 'alice', password: 'alice-Passw0rd', ca: pki.ca });
  assert.equal(timedOut.success, false);
  const wrong = await eapol({ port: s.authPort, secret: s.secret, method: 'PEAP', identity: 'alice', password: 'wrong-password', ca: pki.ca });
  assert.equal(wrong.success, false);
  assert.deepEqual(
    decisions(s, 'alice').filter((a) => a.result === 'reject').map((a) => a.reason),
    ['push_denied', 'push_timeout'],
  );
  assert.ok(decisions(s, 'anonymous').some((a) => a.reason === 'bad_password'));
  assert.deepEqual((await phone.pending()).body, []);
});

test('an anonymous outer identity with no inner User-Name in the Accept is refused with its own reason', async (t) => {
  const s = await server(t, {}, frAnon);
  await phoneFor(s, 'alice');
  const r = await eapol({ port: s.authPort, secret: s.secret, method: 'TTLS', identity: 'alice', password: 'alice-Passw0rd', ca: pki.ca });
  assert.equal(r.success, false);
  assert.equal(decisions(s).find((a) => a.result === 'reject')?.reason, 'anonymous_identity');
  await s.logs.waitFor({ reason: 'anonymous_identity', level: 'warn' });
});

test('fuzz: EAP-Message and MS-CHAP attributes of every wrong length; the process keeps answering', async (t) => {
  const local = await server(t, { first_factor: { type: 'local' } });
  const relayed = await server(t, { first_factor: upstream(fr, { timeout: '300ms' }), mfa: { default_method: 'none' } });
  const vsa = (type: number, value: Buffer) => {
    const v = Buffer.alloc(6 + value.length);
    v.writeUInt32BE(311, 0);
    v[4] = type;
    v[5] = Math.min(255, value.length + 2);
    value.copy(v, 6);
    return v;
  };
  const bodies: [number, Buffer][][] = [];
  for (let n = 0; n <= 253; n++) bodies.push([[Attr.EapMessage, randomBytes(n)]]);
  for (const type of [1, 2, 11, 25, 26]) {
    for (let n = 0; n <= 247; n++) {
      const v = vsa(type, randomBytes(n));
      // Every tenth: the vendor's own Length octet disagrees with the attribute.
      if (n % 10 === 0) v[5] = randomBytes(1)[0]!;
      bodies.push([[Attr.VendorSpecific, v], ...(type === 25 ? ([[Attr.VendorSpecific, vsa(11, randomBytes(16))]] as [number, Buffer][]) : [])]);
    }
  }
  for (const s of [local, relayed]) {
    const client = await UdpClient.open();
    t.after(() => client.close());
    let answered = 0;
    for (let i = 0; i < bodies.length; i += 64) {
      const batch = bodies.slice(i, i + 64).map((attributes, k) => buildAccessRequest({ secret: s.secret, identifier: k, userName: 'alice', attributes }));
      for (const p of batch) await client.send(p, s.authPort);
      // Malformed ones the upstream drops time out there and are answered as unavailable: at most one timeout per batch.
      for (let k = 0; k < batch.length && (await client.next(1500)); k++) answered++;
      client.takeReceived();
    }
    assert.ok(answered > 0);
    const ok = await ask(s, { 'User-Name': 'alice', 'User-Password': 'alice-Passw0rd' });
    assert.notEqual(ok.code, 'timeout', 'still answering');
    assert.equal(s.app.server.counters.errors, 0);
  }
});

test('RFC 3579: an upstream EAP reply without Message-Authenticator is discarded even from a server exempted for PAP', async (t) => {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  t.after(() => sock.close());
  sock.on('message', (msg, rinfo) => {
    const req = decodePacket(msg);
    if (!req.ok) return;
    const reply = encodeResponse({
      code: Code.AccessChallenge,
      identifier: req.packet.identifier,
      requestAuthenticator: req.packet.authenticator,
      attributes: Buffer.concat([encodeAttribute(Attr.EapMessage, Buffer.from([1, 2, 0, 6, 25, 0x20])), encodeAttribute(Attr.State, 'up-state')]),
      proxyStates: [],
      secret: Buffer.from(UP_SECRET),
      withMessageAuthenticator: false,
    });
    sock.send(reply, rinfo.port, rinfo.address);
  });
  const s = await server(t, { first_factor: { type: 'radius', servers: [{ address: `127.0.0.1:${sock.address().port}`, secret: UP_SECRET, require_message_authenticator: false }], timeout: '500ms', retries: 0 } });
  const r = await eapol({ port: s.authPort, secret: s.secret, method: 'PEAP', identity: 'alice', password: 'alice-Passw0rd', ca: pki.ca, timeout: 3 });
  assert.equal(r.success, false);
  assert.equal(decisions(s)[0]?.reason, 'first_factor_unavailable');
  await s.logs.waitFor((l) => typeof l.msg === 'string' && l.msg.includes('EAP-Message without Message-Authenticator'));
});
