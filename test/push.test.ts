import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createActivation } from '../src/mfa/activation.js';
import { MemoryState } from '../src/state/memory.js';
import type { EphemeralState } from '../src/state/state.js';
import type { PushMessage, PushSender, PushSendResult } from '../src/mfa/push-sender.js';
import { radclient } from './helpers/radclient.js';
import { enrollTotp, startTestServer, type StartOptions, type TestServer } from './helpers/server.js';
import { SimulatedPhone, httpCall, newKeyPair } from './helpers/phone.js';
import { buildAccessRequest, UdpClient } from './helpers/udp.js';
import { until } from './helpers/until.js';

/** Records every push and answers with a chosen result. */
class RecordingSender implements PushSender {
  readonly sent: { token: string; message: PushMessage }[] = [];
  constructor(private result: PushSendResult = { ok: true }) {}
  async send(token: string, message: PushMessage): Promise<PushSendResult> {
    this.sent.push({ token, message });
    return this.result;
  }
}

async function pushServer(config: Record<string, unknown> = {}, opts: Omit<StartOptions, 'config'> = {}) {
  const server = await startTestServer({
    ...opts,
    config: {
      http: { listen: '127.0.0.1:0' },
      mfa: { default_method: 'push', reject_delay: '0ms', push: { timeout: '5s' }, ...((config.mfa as object) ?? {}) },
      groups: { staff: { members: ['alice', 'bob'], reply: { 'Filter-Id': 'vpn-staff' } } },
      ...Object.fromEntries(Object.entries(config).filter(([k]) => k !== 'mfa')),
    },
  });
  const base = `http://127.0.0.1:${server.httpPort}`;
  return { server, base };
}

async function userWithPhone(server: TestServer, base: string, username: string, opts: { pin?: string; pushToken?: string } = {}) {
  const user = await enrollTotp(server.store, username, { password: 'pw-' + username });
  const activation = await createActivation(server.store, server.config, username, server.clock.now());
  const phone = await SimulatedPhone.activate(base, activation.activation_code, opts);
  return { user, phone };
}

const login = (server: TestServer, username: string, password: string, extra: Record<string, string> = {}, timeout = 8) =>
  radclient({ 'User-Name': username, 'User-Password': password, 'NAS-Identifier': 'vpn-gw', 'Calling-Station-Id': '203.0.113.7', ...extra }, { port: server.authPort, secret: server.secret, timeout });

test('holds the request until the phone approves, then accepts with the reply attributes', async (t) => {
  const { server, base } = await pushServer();
  t.after(() => server.close());
  const { phone } = await userWithPhone(server, base, 'alice');
  const pending = login(server, 'alice', 'pw-alice');
  const request = await phone.waitForPending();
  assert.equal(request.username, 'alice');
  assert.equal(request.client, 'test-nas');
  assert.equal(request.calling_station, '203.0.113.7');
  assert.equal(request.number, undefined);
  assert.deepEqual((await phone.answer(request.id, 'approve')).body, { status: 'approved' });
  const reply = await pending;
  assert.equal(reply.code, 'Access-Accept');
  assert.deepEqual(reply.attributes['Filter-Id'], ['vpn-staff']);
  assert.equal(reply.order[0], 'Message-Authenticator');
  const audit = server.logs.audits('alice').find((a) => a.msg === 'decision');
  assert.equal(audit?.reason, 'push_approved');
  const answer = server.logs.filter({ event: 'push_answer' })[0];
  assert.equal(answer?.device, phone.deviceId);
  assert.equal(answer?.decision, 'approve');
});

test('a denial on the phone rejects; no answer before mfa.push.timeout rejects too', async (t) => {
  const { server, base } = await pushServer({ mfa: { push: { timeout: '700ms' } } });
  t.after(() => server.close());
  const { phone } = await userWithPhone(server, base, 'alice');
  const denied = login(server, 'alice', 'pw-alice');
  await phone.answer((await phone.waitForPending()).id, 'deny');
  const r1 = await denied;
  assert.equal(r1.code, 'Access-Reject');
  assert.match(r1.attributes['Reply-Message']![0]!, /denied/);
  const r2 = await login(server, 'alice', 'pw-alice');
  assert.equal(r2.code, 'Access-Reject');
  assert.match(r2.attributes['Reply-Message']![0]!, /did not answer in time/);
  assert.deepEqual(server.logs.audits('alice').filter((a) => a.msg === 'decision').map((a) => a.reason), ['push_denied', 'push_timeout']);
});

test('a wrong password sends no push at all', async (t) => {
  const sender = new RecordingSender();
  const { server, base } = await pushServer({}, { pushSender: sender });
  t.after(() => server.close());
  await userWithPhone(server, base, 'alice', { pushToken: 'fcm-token-1' });
  const r = await login(server, 'alice', 'wrong');
  assert.equal(r.code, 'Access-Reject');
  assert.equal(sender.sent.length, 0);
  assert.equal(server.app.pending.size, 0);
});

test('fraud report rejects, locks the user until unlocked, and raises an alert', async (t) => {
  const { server, base } = await pushServer();
  t.after(() => server.close());
  const { phone } = await userWithPhone(server, base, 'alice');
  const pending = login(server, 'alice', 'pw-alice');
  await phone.answer((await phone.waitForPending()).id, 'fraud');
  assert.equal((await pending).code, 'Access-Reject');
  assert.ok((await server.store.getUser('alice'))?.lockedUntil);
  assert.equal(server.logs.filter({ alert: 'fraud' }).length, 1);
  const again = await login(server, 'alice', 'pw-alice');
  assert.equal(again.code, 'Access-Reject');
  assert.equal(server.logs.audits('alice').filter((a) => a.msg === 'decision').at(-1)?.reason, 'locked');
  assert.equal(await server.store.unlockUser('alice'), true);
  const after = login(server, 'alice', 'pw-alice');
  await phone.answer((await phone.waitForPending()).id, 'approve');
  assert.equal((await after).code, 'Access-Accept');
});

test('number matching: challenge, the phone shows the number, accepted only with approval AND the right number', async (t) => {
  const { server, base } = await pushServer({ mfa: { push: { number_matching: true } } });
  t.after(() => server.close());
  const { phone } = await userWithPhone(server, base, 'alice');

  const first = await login(server, 'alice', 'pw-alice');
  assert.equal(first.code, 'Access-Challenge');
  assert.match(first.attributes['Reply-Message']![0]!, /number/);
  const state = first.attributes['State']![0]!;
  const request = await phone.waitForPending();
  assert.match(request.number!, /^\d{2}$/);
  await phone.answer(request.id, 'approve');
  const ok = await login(server, 'alice', request.number!, { State: state });
  assert.equal(ok.code, 'Access-Accept');
  assert.deepEqual(ok.attributes['Filter-Id'], ['vpn-staff']);

  const second = await login(server, 'alice', 'pw-alice');
  const request2 = await phone.waitForPending();
  await phone.answer(request2.id, 'approve');
  const wrongNumber = String(((Number(request2.number) - 10 + 1) % 90) + 10);
  const bad = await login(server, 'alice', wrongNumber, { State: second.attributes['State']![0]! });
  assert.equal(bad.code, 'Access-Reject');
  assert.equal(server.logs.audits('alice').filter((a) => a.msg === 'decision').at(-1)?.reason, 'number_mismatch');
});

test('approving without the number does nothing for someone who triggered the push with a stolen password', async (t) => {
  const { server, base } = await pushServer({ mfa: { push: { number_matching: true } } });
  t.after(() => server.close());
  const { phone } = await userWithPhone(server, base, 'alice');
  const attacker = await login(server, 'alice', 'pw-alice');
  await phone.answer((await phone.waitForPending()).id, 'approve');
  const guess = await login(server, 'alice', '', { State: attacker.attributes['State']![0]! });
  assert.equal(guess.code, 'Access-Reject');
});

test('PIN required: set at activation, missing or wrong PIN refused (and counted), right PIN approves', async (t) => {
  const { server, base } = await pushServer({ mfa: { push: { pin: 'required' }, lockout: { max_failures: 3 } } });
  t.after(() => server.close());
  await enrollTotp(server.store, 'alice', { password: 'pw-alice' });
  const code = (await createActivation(server.store, server.config, 'alice', server.clock.now())).activation_code;
  await assert.rejects(SimulatedPhone.activate(base, code), /PIN_REQUIRED/);
  const phone = await SimulatedPhone.activate(base, code, { pin: '4711' });
  const pending = login(server, 'alice', 'pw-alice');
  const request = await phone.waitForPending();
  assert.equal(request.pin_required, true);
  const missing = await phone.answer(request.id, 'approve');
  assert.equal(missing.status, 400);
  assert.equal((missing.body.error as { code: string }).code, 'PIN_REQUIRED');
  const wrong = await phone.answer(request.id, 'approve', { pin: '0000' });
  assert.equal(wrong.status, 403);
  assert.equal((wrong.body.error as { code: string }).code, 'WRONG_PIN');
  assert.deepEqual((await phone.answer(request.id, 'approve', { pin: '4711' })).body, { status: 'approved' });
  assert.equal((await pending).code, 'Access-Accept');
});

test('wrong PINs up to the lockout limit lock the user and end the request', async (t) => {
  const { server, base } = await pushServer({ mfa: { push: { pin: 'required' }, lockout: { max_failures: 2 } } });
  t.after(() => server.close());
  const { phone } = await userWithPhone(server, base, 'alice', { pin: '4711' });
  const pending = login(server, 'alice', 'pw-alice');
  const request = await phone.waitForPending();
  await phone.answer(request.id, 'approve', { pin: '1111' });
  const last = await phone.answer(request.id, 'approve', { pin: '2222' });
  assert.match(String((last.body.error as { message: string }).message), /locked/);
  assert.equal((await pending).code, 'Access-Reject');
  assert.ok((await server.store.getUser('alice'))?.lockedUntil);
});

/** A push server recording what it sends, alice with a phone, and a raw UDP client to send her requests. */
async function aliceOverUdp(t: { after: (fn: () => unknown) => void }) {
  const sender = new RecordingSender();
  const { server, base } = await pushServer({}, { pushSender: sender });
  t.after(() => server.close());
  const { phone } = await userWithPhone(server, base, 'alice', { pushToken: 'fcm-token-1' });
  const udp = await UdpClient.open();
  t.after(() => udp.close());
  return { sender, server, phone, udp };
}

test('ten retransmissions and a re-sent request of one attempt make exactly one push', async (t) => {
  const { sender, server, phone, udp } = await aliceOverUdp(t);
  const station: [number, string] = [31, '203.0.113.7'];
  const datagram = buildAccessRequest({ secret: server.secret, identifier: 7, userName: 'alice', password: 'pw-alice', attributes: [station] });
  for (let i = 0; i < 10; i++) await udp.send(datagram, server.authPort);
  const resent = buildAccessRequest({ secret: server.secret, identifier: 8, userName: 'alice', password: 'pw-alice', attributes: [station] });
  await udp.send(resent, server.authPort);
  const request = await phone.waitForPending();
  assert.equal((await phone.pending()).body.length, 1);
  await phone.answer(request.id, 'approve');
  const replies = [await udp.next(3000), await udp.next(3000)];
  assert.equal(await udp.next(300), undefined, 'one reply per request, not per copy');
  assert.deepEqual(replies.map((r) => r?.bytes[0]).sort(), [2, 2], JSON.stringify(server.logs.records.filter((r) => r.audit || r.level !== 'info')));
  assert.deepEqual(replies.map((r) => r?.bytes[1]).sort(), [7, 8]);
  assert.equal(sender.sent.length, 1);
  assert.deepEqual(Object.keys(sender.sent[0]!.message).sort(), ['requestId', 'text', 'ttlMs']);
  assert.equal(sender.sent[0]!.message.requestId, request.id);
});

test('another session behind the same address (same Calling-Station-Id, another NAS-Port) gets a push of its own: approving the user\'s does not let it in', async (t) => {
  const { sender, server, phone, udp } = await aliceOverUdp(t);
  const nasPort = (n: number): [number, Buffer] => [5, Buffer.from([0, 0, n >> 8, n & 0xff])];
  const session = (identifier: number, port: number) =>
    buildAccessRequest({ secret: server.secret, identifier, userName: 'alice', password: 'pw-alice', attributes: [[31, '203.0.113.7'], nasPort(port)] });
  await udp.send(session(7, 1001), server.authPort);
  const users = await phone.waitForPending();
  // The user's NAS re-sends on its own port (joins); someone else at that NAT address, with the password, on another.
  await udp.send(session(8, 1001), server.authPort);
  await udp.send(session(9, 2002), server.authPort);
  for (const deadline = Date.now() + 5000; sender.sent.length < 2 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sender.sent.length, 2, 'a push for each session, not one');
  const [, other] = (await phone.pending()).body;
  assert.notEqual(other?.id, undefined);
  await phone.answer(users.id, 'approve');
  const approved = [await udp.next(3000), await udp.next(3000)];
  assert.deepEqual(approved.map((r) => [r?.bytes[1], r?.bytes[0]]).sort(), [[7, 2], [8, 2]]);
  assert.equal(await udp.next(300), undefined, 'the other session is still waiting for its own push');
  await phone.answer(other!.id, 'deny');
  const denied = await udp.next(3000);
  assert.deepEqual([denied?.bytes[1], denied?.bytes[0]], [9, 3]);
});

test('bad signatures, other accounts and unknown requests are refused and change nothing', async (t) => {
  const { server, base } = await pushServer();
  t.after(() => server.close());
  const { phone } = await userWithPhone(server, base, 'alice');
  const { phone: bobPhone } = await userWithPhone(server, base, 'bob');
  const pending = login(server, 'alice', 'pw-alice');
  const request = await phone.waitForPending();

  const otherKey = await phone.answer(request.id, 'approve', { keys: await newKeyPair() });
  assert.equal(otherKey.status, 403);
  assert.equal((otherKey.body.error as { code: string }).code, 'BAD_SIGNATURE');
  const swapped = await phone.answer(request.id, 'approve', { signText: `${request.id}.deny` });
  assert.equal((swapped.body.error as { code: string }).code, 'BAD_SIGNATURE');
  const bobs = await bobPhone.answer(request.id, 'approve');
  assert.equal((bobs.body.error as { code: string }).code, 'NOT_YOUR_REQUEST');
  assert.equal((await bobPhone.pending()).body.length, 0, 'bob does not see alice\'s request');
  const unknown = await phone.answer('no-such-request', 'approve');
  assert.equal((unknown.body.error as { code: string }).code, 'REQUEST_NOT_FOUND');
  const noToken = await httpCall('GET', `${base}/api/v1/pending`);
  assert.equal(noToken.status, 401);

  assert.equal((await phone.pending()).body[0]?.id, request.id, 'still pending after every refusal');
  await phone.answer(request.id, 'approve');
  assert.equal((await pending).code, 'Access-Accept');
  const late = await phone.answer(request.id, 'deny');
  assert.equal((late.body.error as { code: string }).code, 'ALREADY_ANSWERED');
});

test('a NAS whose timeout cannot hold the push gets "approve, then press Enter" instead', async (t) => {
  const { server: s2, base: b2 } = await pushServer({
    mfa: { push: { timeout: '60s' } },
    clients: [{ name: 'short-nas', address: '127.0.0.1', secret: 'short-secret-1234567', nas_timeout: '3s', nas_retries: 1 }],
  });
  t.after(() => s2.close());
  const { phone } = await userWithPhone(s2, b2, 'alice');
  const ask = await radclient({ 'User-Name': 'alice', 'User-Password': 'pw-alice' }, { port: s2.authPort, secret: 'short-secret-1234567', timeout: 8 });
  assert.equal(ask.code, 'Access-Challenge');
  assert.match(ask.attributes['Reply-Message']![0]!, /press Enter/);
  await phone.answer((await phone.waitForPending()).id, 'approve');
  const done = await radclient({ 'User-Name': 'alice', 'User-Password': '', State: ask.attributes['State']![0]! }, { port: s2.authPort, secret: 'short-secret-1234567', timeout: 8 });
  assert.equal(done.code, 'Access-Accept', JSON.stringify(s2.logs.audits('alice')));
});

test('failmode: push service down rejects when secure and accepts (logged loudly) when safe', async (t) => {
  for (const failmode of ['secure', 'safe'] as const) {
    const { server, base } = await pushServer({ mfa: { failmode } }, { pushSender: new RecordingSender({ ok: false, kind: 'unavailable', detail: 'messaging/internal-error' }) });
    t.after(() => server.close());
    await userWithPhone(server, base, 'alice', { pushToken: 'fcm-token-1' });
    const r = await login(server, 'alice', 'pw-alice');
    assert.equal(r.code, failmode === 'secure' ? 'Access-Reject' : 'Access-Accept');
    const audit = server.logs.audits('alice').at(-1);
    assert.equal(audit?.reason, failmode === 'secure' ? 'push_unavailable' : 'failmode_safe');
    if (failmode === 'safe') assert.equal(audit?.level, 'error');
  }
});

test('a stale FCM token marks the device and tells the user to open the app', async (t) => {
  const { server, base } = await pushServer({}, { pushSender: new RecordingSender({ ok: false, kind: 'stale_token', detail: 'messaging/registration-token-not-registered' }) });
  t.after(() => server.close());
  const { phone } = await userWithPhone(server, base, 'alice', { pushToken: 'old-token' });
  const r = await login(server, 'alice', 'pw-alice');
  assert.equal(r.code, 'Access-Reject');
  assert.match(r.attributes['Reply-Message']![0]!, /open the app/);
  assert.equal((await server.store.devices.list('alice'))[0]?.pushTokenStale, true);
  assert.equal((await phone.setPushToken('new-token')).status, 204);
  const device = (await server.store.devices.list('alice'))[0]!;
  assert.equal(device.pushTokenStale, false);
  assert.equal(device.pushToken, 'new-token');
});

test('rate limit: more pushes than mfa.push.rate_limit.max in the window are refused', async (t) => {
  const { server, base } = await pushServer({ mfa: { push: { timeout: '300ms', rate_limit: { max: 2, window: '10m' } } } });
  t.after(() => server.close());
  await userWithPhone(server, base, 'alice');
  for (let i = 0; i < 3; i++) await login(server, 'alice', 'pw-alice');
  assert.deepEqual(server.logs.audits('alice').filter((a) => a.msg === 'decision').map((a) => a.reason), ['push_timeout', 'push_timeout', 'push_rate_limited']);
});

test('auto: a code appended means TOTP, none means push; no device falls back to asking for the code', async (t) => {
  const { server, base } = await pushServer({ mfa: { default_method: 'auto', totp: { separator: ',' } } });
  t.after(() => server.close());
  const { user, phone } = await userWithPhone(server, base, 'alice');
  const withCode = await login(server, 'alice', `pw-alice,${user.codeAt(server.clock.now())}`);
  assert.equal(withCode.code, 'Access-Accept');
  const pushed = login(server, 'alice', 'pw-alice');
  await phone.answer((await phone.waitForPending()).id, 'approve');
  assert.equal((await pushed).code, 'Access-Accept');
  await enrollTotp(server.store, 'carol', { password: 'pw-carol' });
  const noDevice = await login(server, 'carol', 'pw-carol');
  assert.equal(noDevice.code, 'Access-Challenge');
});

test('activation codes are single-use; deregistering removes the device; OpenAPI is served', async (t) => {
  const { server, base } = await pushServer();
  t.after(() => server.close());
  await enrollTotp(server.store, 'alice', { password: 'pw-alice' });
  const a = await createActivation(server.store, server.config, 'alice', server.clock.now(), true);
  assert.match(a.activation_code, /^\d{4}-\d{4}-\d{4}$/);
  assert.match(a.qr_payload, /\/app\/\?activate=\d{12}/);
  const phone = await SimulatedPhone.activate(base, a.activation_code);
  assert.equal(phone.activation.username, 'alice');
  assert.equal((phone.activation.totp as { digits: number }).digits, 6, 'the app gets the TOTP secret when asked');
  await assert.rejects(SimulatedPhone.activate(base, a.activation_code), /ACTIVATION_INVALID/);
  assert.equal((await phone.deregister()).status, 204);
  assert.equal((await server.store.devices.list('alice')).length, 0);
  assert.equal((await phone.pending()).status, 401);
  const spec = await httpCall<{ openapi: string; paths: Record<string, unknown> }>('GET', `${base}/api/v1/openapi.json`);
  assert.equal(spec.status, 200);
  for (const path of ['/api/v1/activation', '/api/v1/pending', '/api/v1/requests/{id}/answer', '/api/v1/push-token', '/api/v1/device']) assert.ok(spec.body.paths[path], path);
});

/** MemoryState whose next `failures` calls of `method` throw a plain error: a bug, not an engine outage. */
function buggyState(method: 'marked' | 'pushes', failures: number) {
  return async (_config: unknown, now: () => number) => {
    const state = new MemoryState(now);
    if (method === 'marked') {
      const marked = state.marked.bind(state);
      (state as EphemeralState).marked = async (key) => (failures-- > 0 ? Promise.reject(new TypeError('injected bug')) : marked(key));
    } else {
      const pending = state.pushes();
      const listen = pending.listen.bind(pending);
      pending.listen = (id, waiter) => (failures-- > 0 ? waiter.failed(new TypeError('injected bug')) : listen(id, waiter));
    }
    return state;
  };
}

const BUG_LINE = 'bug: access handler failed; no reply sent';

/** Alice's request, failed by the injected bug (logged, no reply), then sent again as the NAS would. */
async function resentAfterBug(t: TestContext, config: Record<string, unknown>, openState: ReturnType<typeof buggyState>) {
  const { server, base } = await pushServer(config, { openState });
  t.after(() => server.close());
  const { phone } = await userWithPhone(server, base, 'alice');
  const udp = await UdpClient.open();
  t.after(() => udp.close());
  const datagram = buildAccessRequest({ secret: server.secret, identifier: 3, userName: 'alice', password: 'pw-alice', attributes: [[31, '203.0.113.7']] });
  await udp.send(datagram, server.authPort);
  await until(() => server.logs.filter({ msg: BUG_LINE })[0], 'the bug logged');
  await udp.send(datagram, server.authPort);
  return { server, phone, udp };
}

test('a bug while deciding is logged and answered with nothing; the retransmission is decided afresh', async (t) => {
  const { server, udp } = await resentAfterBug(t, { mfa: { default_method: 'none' } }, buggyState('marked', 1));
  assert.equal((await udp.next(3000))?.bytes[0], 2, 'the retransmission gets the Access-Accept');
  assert.equal(await udp.next(300), undefined, 'and the failed first copy got no reply');
  assert.equal(server.logs.filter({ msg: BUG_LINE }).length, 1);
});

test('a bug while a request is held for the phone is logged, sends no reply, and the retransmission waits for the same push', async (t) => {
  const { phone, udp } = await resentAfterBug(t, {}, buggyState('pushes', 1));
  const request = await phone.waitForPending();
  assert.equal((await phone.pending()).body.length, 1, 'one push for both copies');
  await phone.answer(request.id, 'approve');
  assert.equal((await udp.next(3000))?.bytes[0], 2);
  assert.equal(await udp.next(300), undefined, 'one reply in all');
});

test('a request held past the 15 minutes its duplicate-cache entry lives gets no reply when the phone answers, and is counted decided_too_late', async (t) => {
  const { server, base } = await pushServer({ mfa: { push: { timeout: '10s' } } });
  t.after(() => server.close());
  const { phone } = await userWithPhone(server, base, 'alice');
  const udp = await UdpClient.open();
  t.after(() => udp.close());
  await udp.send(buildAccessRequest({ secret: server.secret, identifier: 5, userName: 'alice', password: 'pw-alice', attributes: [[31, '203.0.113.7']] }), server.authPort);
  const request = await phone.waitForPending();
  // Sixteen minutes on the server's clock, and a datagram for the cache's once-a-second sweep to run on:
  // the held request's entry is forgotten, and may name another request from then on. The clock then goes
  // back, so that the push itself is still open when the phone answers.
  const heldAt = server.clock.now();
  server.clock.advance(16 * 60_000);
  await udp.send(buildAccessRequest({ secret: server.secret, identifier: 6, userName: 'nobody', password: 'x' }), server.authPort);
  assert.ok(await udp.next(3000), 'the other request is answered');
  server.clock.set(heldAt);
  assert.deepEqual((await phone.answer(request.id, 'approve')).body, { status: 'approved' });
  await until(() => server.app.server.drops.get('decided_too_late'), 'the late decision counted');
  assert.equal(await udp.next(300), undefined, 'no reply to a request whose entry was forgotten');
  assert.equal(server.app.server.drops.get('decided_too_late'), 1);
});
