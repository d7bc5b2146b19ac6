// The second-factor service (flow/second-factor.ts) alone: every method and outcome, with memory
// state, an in-memory SQLite store, pushes in memory and a fake clock. No sockets; the file runs in
// well under a second (PIN hashes are the slowest part).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { hashPassword } from '../src/auth/password-hash.js';
import { configSchema } from '../src/config/schema.js';
import {
  answerPush,
  checkPin,
  confirmEnrollment,
  openPush,
  pushVerdict,
  secondFactorSettings,
  settlePush,
  startEnrollment,
  verifyCode,
  type PushRequest,
  type SecondFactorDeps,
} from '../src/flow/second-factor.js';
import { takeAttemptSlot, type LockEvent, type Where } from '../src/flow/lockout.js';
import type { PushMessage, PushSendResult, PushSender } from '../src/mfa/push-sender.js';
import { MemoryState } from '../src/state/memory.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { baseConfig, codeAt, createClock, enrollTotp, mergeConfig, type ConfigInput } from './helpers/server.js';

const STRANGER: Where = { source: '198.51.100.7', familiar: false };

class FakeSender implements PushSender {
  readonly sent: { token: string; message: PushMessage }[] = [];
  constructor(private readonly result: PushSendResult = { ok: true }) {}
  async send(token: string, message: PushMessage): Promise<PushSendResult> {
    this.sent.push({ token, message });
    return this.result;
  }
}

function setup(t: TestContext, over: ConfigInput = {}, pushSender?: PushSender) {
  const config = configSchema.parse(mergeConfig(mergeConfig(baseConfig('127.0.0.1', 'unused'), { store: { path: ':memory:' }, mfa: { lockout: { max_failures: 3 } } }), over));
  const clock = createClock();
  const store = openSqliteStore(config.store, randomBytes(32), { now: clock.now });
  const state = new MemoryState(clock.now);
  const pending = state.pushes();
  const locks: LockEvent[] = [];
  const deps: SecondFactorDeps = { settings: secondFactorSettings(config), store, state, pending, pushSender, onLock: (e) => locks.push(e) };
  t.after(async () => {
    await pending.close();
    store.close();
  });
  return { config, clock, store, state, pending, deps, locks };
}

async function addPhone(s: ReturnType<typeof setup>, username: string, pushToken: string | null = 'fcm-token') {
  const id = `dev-${randomBytes(4).toString('hex')}`;
  await s.store.devices.add({ id, username, name: 'Phone', publicKey: randomBytes(91), tokenHash: randomBytes(32), pushToken });
  return { id, name: 'Phone' };
}

function pushRequest(username: string, over: Partial<PushRequest> = {}): PushRequest {
  return { username, user: undefined, clientName: 'test-nas', nasIp: '192.0.2.1', nasIdentifier: 'vpn', callingStation: '198.51.100.7', numberMatching: false, ...over };
}

test('attempt slots: at most max_failures at once; each ends once; abandon after an end gives nothing back twice', async (t) => {
  const s = setup(t); // max_failures 3
  await enrollTotp(s.store, 'alice');
  const now = s.clock.now();
  const take = () => takeAttemptSlot('alice', STRANGER, now, s.deps);
  const [a, b, c] = [await take(), await take(), await take()];
  assert.ok(a && b && c);
  assert.equal(await take(), undefined, 'a fourth attempt in progress is refused unchecked');
  await a.release();
  assert.throws(() => a.succeed(), /ended twice/);
  await a.abandon();
  const d = await take();
  assert.ok(d, 'the released slot is free again, and only once');
  assert.equal(await take(), undefined);
  assert.equal(await b.fail('bad_password'), false, 'the second of three is no lock');
  assert.equal(await c.fail('bad_password'), true, 'the third failure locks');
  assert.deepEqual(s.locks.map((l) => [l.username, l.kind, l.reason]), [['alice', 'unfamiliar', 'bad_password']]);
  await d.abandon();
  assert.throws(() => d.release(), /ended twice/);
});

test('verifyCode: a current code passes once; the same code again is a replay', async (t) => {
  const s = setup(t);
  const alice = await enrollTotp(s.store, 'alice');
  const user = await s.store.getUser('alice');
  const now = s.clock.now();
  assert.deepEqual(await verifyCode({ username: 'alice', user, where: STRANGER, code: alice.codeAt(now) }, now, s.deps), { ok: true });
  assert.deepEqual(await verifyCode({ username: 'alice', user, where: STRANGER, code: alice.codeAt(now) }, now, s.deps), { ok: false, reason: 'replay', locked: false });
});

test('verifyCode: a code typed with spaces ("123 456", " 123456 ") reads as typed without them, at every door', async (t) => {
  const s = setup(t);
  const alice = await enrollTotp(s.store, 'alice');
  const user = await s.store.getUser('alice');
  const now = s.clock.now();
  const code = alice.codeAt(now);
  assert.deepEqual(await verifyCode({ username: 'alice', user, where: STRANGER, code: ` ${code.slice(0, 3)} ${code.slice(3)} ` }, now, s.deps), { ok: true });
});

test('verifyCode: the window is one step either side of the time given, not the wall clock', async (t) => {
  const s = setup(t);
  const alice = await enrollTotp(s.store, 'alice');
  const user = await s.store.getUser('alice');
  const now = s.clock.now() + 3_600_000;
  assert.equal((await verifyCode({ username: 'alice', user, where: STRANGER, code: alice.codeAt(now - 30_000) }, now, s.deps)).ok, true);
  const r = await verifyCode({ username: 'alice', user, where: STRANGER, code: alice.codeAt(now + 90_000) }, now, s.deps);
  assert.deepEqual(r, { ok: false, reason: 'bad_code', locked: false });
});

test('verifyCode: wrong codes from a stranger lock the user (they count twice); then the code is not even checked', async (t) => {
  const s = setup(t);
  const alice = await enrollTotp(s.store, 'alice');
  const now = s.clock.now();
  const wrong = async () => verifyCode({ username: 'alice', user: await s.store.getUser('alice'), where: STRANGER, code: '000000' === alice.codeAt(now) ? '111111' : '000000' }, now, s.deps);
  assert.deepEqual(await wrong(), { ok: false, reason: 'bad_code', locked: false });
  assert.deepEqual(await wrong(), { ok: false, reason: 'bad_code', locked: true });
  assert.equal(s.locks.length, 1);
  assert.equal(s.locks[0]!.kind, 'unfamiliar');
  const right = await verifyCode({ username: 'alice', user: await s.store.getUser('alice'), where: STRANGER, code: alice.codeAt(now) }, now, s.deps);
  assert.deepEqual(right, { ok: false, reason: 'locked', locked: true });
  // After the lock, at the time given, the right code passes again.
  const later = now + 16 * 60_000;
  assert.deepEqual(await verifyCode({ username: 'alice', user: await s.store.getUser('alice'), where: STRANGER, code: alice.codeAt(later) }, later, s.deps), { ok: true });
});

test('verifyCode: no enrollment is not_enrolled, and a slot the caller holds is ended exactly once', async (t) => {
  const s = setup(t);
  await s.store.addUser({ username: 'bob' });
  const ends: string[] = [];
  const slot = { fail: async () => (ends.push('fail'), false), succeed: async () => void ends.push('succeed'), release: async () => void ends.push('release'), abandon: async () => void ends.push('abandon') };
  const r = await verifyCode({ username: 'bob', user: await s.store.getUser('bob'), where: STRANGER, code: '123456', slot }, s.clock.now(), s.deps);
  assert.deepEqual(r, { ok: false, reason: 'not_enrolled', locked: false });
  const alice = await enrollTotp(s.store, 'alice');
  await verifyCode({ username: 'alice', user: await s.store.getUser('alice'), where: STRANGER, code: alice.codeAt(s.clock.now()), slot }, s.clock.now(), s.deps);
  assert.deepEqual(ends, ['release', 'succeed']);
});

test('openPush: no phone is no_device; a phone gets the push with the settings PIN rule and a number when asked', async (t) => {
  const s = setup(t, { mfa: { push: { pin: 'optional' } } });
  await s.store.addUser({ username: 'alice' });
  assert.deepEqual(await openPush(pushRequest('alice'), s.deps), { ok: false, reason: 'no_device' });
  await addPhone(s, 'alice', null);
  const plain = await openPush(pushRequest('alice'), s.deps);
  assert.ok(plain.ok);
  assert.equal(plain.push.pinRequired, false, 'optional and no PIN set');
  assert.equal(plain.push.number, undefined);
  await s.store.setPinHash('alice', 'x');
  const numbered = await openPush(pushRequest('alice', { user: await s.store.getUser('alice'), numberMatching: true, callingStation: undefined }), s.deps);
  assert.ok(numbered.ok);
  assert.equal(numbered.push.pinRequired, true);
  assert.match(numbered.push.number!, /^[1-9][0-9]$/);
  assert.equal(numbered.push.expires - numbered.push.createdAt, s.config.mfa.push.timeout);
});

test('openPush: requests of one attempt join its push; without an arrival (the portal) each opens its own', async (t) => {
  const s = setup(t);
  await s.store.addUser({ username: 'alice' });
  await addPhone(s, 'alice', null);
  const first = await openPush(pushRequest('alice', { arrival: 1 }), s.deps);
  const again = await openPush(pushRequest('alice', { arrival: 2 }), s.deps);
  const portal = await openPush(pushRequest('alice'), s.deps);
  assert.ok(first.ok && again.ok && portal.ok);
  assert.equal(again.push.id, first.push.id);
  assert.notEqual(portal.push.id, first.push.id);
});

test('openPush: past the per-user rate limit the push is refused and ended', async (t) => {
  const s = setup(t, { mfa: { push: { rate_limit: { max: 1, window: '10m' } } } });
  await s.store.addUser({ username: 'alice' });
  await addPhone(s, 'alice', null);
  assert.equal((await openPush(pushRequest('alice'), s.deps)).ok, true);
  assert.deepEqual(await openPush(pushRequest('alice'), s.deps), { ok: false, reason: 'push_rate_limited' });
  assert.equal(s.pending.openCount, 1, 'the refused push is not left open for the phone');
});

test('openPush: the sender is given the text and the time to live; a stale token or an outage refuses the push', async (t) => {
  const sent = new FakeSender();
  const s = setup(t, { mfa: { push: { text: 'Sign in?' } } }, sent);
  await s.store.addUser({ username: 'alice' });
  await addPhone(s, 'alice');
  const ok = await openPush(pushRequest('alice'), s.deps);
  assert.ok(ok.ok);
  assert.deepEqual(sent.sent, [{ token: 'fcm-token', message: { requestId: ok.push.id, text: 'Sign in?', ttlMs: s.config.mfa.push.timeout } }]);

  const stale = setup(t, {}, new FakeSender({ ok: false, kind: 'stale_token', detail: 'gone' }));
  await stale.store.addUser({ username: 'alice' });
  const phone = await addPhone(stale, 'alice');
  assert.deepEqual(await openPush(pushRequest('alice'), stale.deps), { ok: false, reason: 'push_token_stale' });
  assert.equal((await stale.store.devices.list('alice')).find((d) => d.id === phone.id)?.pushTokenStale, true);

  const down = setup(t, {}, new FakeSender({ ok: false, kind: 'unavailable', detail: 'down' }));
  await down.store.addUser({ username: 'alice' });
  await addPhone(down, 'alice');
  assert.deepEqual(await openPush(pushRequest('alice'), down.deps), { ok: false, reason: 'push_unavailable' });
});

test('openPush: a phone that answered while the sender failed keeps its answer (an app polls /pending when opened)', async (t) => {
  let s!: ReturnType<typeof setup>;
  const answeringSender: PushSender = {
    async send(_token, message) {
      await s.pending.decide(message.requestId, { kind: 'approve', deviceId: 'polled' });
      return { ok: false, kind: 'unavailable', detail: 'down' };
    },
  };
  s = setup(t, {}, answeringSender);
  await s.store.addUser({ username: 'alice' });
  await addPhone(s, 'alice');
  const r = await openPush(pushRequest('alice'), s.deps);
  assert.ok(r.ok);
  assert.deepEqual((await s.pending.get(r.push.id))?.outcome, { kind: 'approve', deviceId: 'polled' });
});

test('answerPush: approve with a PIN required needs the right PIN; wrong PINs count and end the push as locked', async (t) => {
  const s = setup(t, { mfa: { push: { pin: 'required' } } });
  await s.store.addUser({ username: 'alice' });
  const phone = await addPhone(s, 'alice', null);
  const opened = await openPush(pushRequest('alice'), s.deps);
  assert.ok(opened.ok);
  const push = opened.push;
  const now = s.clock.now();
  assert.deepEqual(await answerPush({ push, device: phone, answer: 'approve', pin: undefined }, now, s.deps), { ok: false, reason: 'pin_required', locked: false });
  assert.deepEqual(await answerPush({ push, device: phone, answer: 'approve', pin: '1234' }, now, s.deps), { ok: false, reason: 'pin_not_set', locked: false });
  await s.store.setPinHash('alice', await hashPassword('2468'));
  assert.deepEqual(await answerPush({ push, device: phone, answer: 'approve', pin: '1111' }, now, s.deps), { ok: false, reason: 'wrong_pin', locked: false });
  assert.deepEqual(await answerPush({ push, device: phone, answer: 'approve', pin: '1111' }, now, s.deps), { ok: false, reason: 'wrong_pin', locked: false });
  assert.deepEqual(await answerPush({ push, device: phone, answer: 'approve', pin: '1111' }, now, s.deps), { ok: false, reason: 'wrong_pin', locked: true });
  // A push as read now (reads are copies: another node may have decided it), as the API reads it before answering.
  const locked = (await s.pending.get(push.id))!;
  assert.deepEqual(locked.outcome, { kind: 'locked', deviceId: phone.id });
  assert.deepEqual(await answerPush({ push: locked, device: phone, answer: 'approve', pin: '2468' }, now, s.deps), { ok: false, reason: 'already_answered', locked: false });
});

test('answerPush: the right PIN approves; deny needs none; an expired push says so; fraud locks the user for good', async (t) => {
  const s = setup(t, { mfa: { push: { pin: 'required' } } });
  await s.store.addUser({ username: 'alice' });
  await s.store.setPinHash('alice', await hashPassword('2468'));
  const phone = await addPhone(s, 'alice', null);
  const now = s.clock.now();
  const open = async () => {
    const r = await openPush(pushRequest('alice', { callingStation: undefined }), s.deps);
    assert.ok(r.ok);
    return r.push;
  };
  const approved = await open();
  assert.deepEqual(await answerPush({ push: approved, device: phone, answer: 'approve', pin: '2468' }, now, s.deps), { ok: true });
  assert.equal((await s.pending.get(approved.id))?.outcome?.kind, 'approve');
  const denied = await open();
  assert.deepEqual(await answerPush({ push: denied, device: phone, answer: 'deny', pin: undefined }, now, s.deps), { ok: true });
  const expired = await open();
  await s.pending.decide(expired.id, { kind: 'timeout' });
  assert.deepEqual(await answerPush({ push: expired, device: phone, answer: 'approve', pin: '2468' }, now, s.deps), { ok: false, reason: 'expired', locked: false });
  const fraud = await open();
  assert.deepEqual(await answerPush({ push: fraud, device: phone, answer: 'fraud', pin: undefined }, now, s.deps), { ok: true });
  const user = await s.store.getUser('alice');
  assert.equal(user?.lockedUntil, Number.MAX_SAFE_INTEGER);
  assert.match(user?.lockReason ?? '', new RegExp(`fraud reported from device ${phone.id}`));
});

test('answerPush: a fraud report whose lock cannot be written fails, and leaves the push open for the phone to send it again', async (t) => {
  const s = setup(t);
  await s.store.addUser({ username: 'alice' });
  const phone = await addPhone(s, 'alice', null);
  const r = await openPush(pushRequest('alice', { callingStation: undefined }), s.deps);
  assert.ok(r.ok);
  const store = Object.assign(Object.create(s.store) as typeof s.store, { lockUser: () => Promise.reject(new Error('store_unavailable')) });
  await assert.rejects(answerPush({ push: r.push, device: phone, answer: 'fraud', pin: undefined }, s.clock.now(), { ...s.deps, store }), /store_unavailable/);
  assert.equal((await s.pending.get(r.push.id))?.outcome, undefined, 'not decided: the report is not lost');
  assert.deepEqual(await answerPush({ push: r.push, device: phone, answer: 'fraud', pin: undefined }, s.clock.now(), s.deps), { ok: true });
  assert.equal((await s.store.getUser('alice'))?.lockedUntil, Number.MAX_SAFE_INTEGER);
});

test('settlePush: each outcome has its reason; the number is compared; only one answer may use a push', async (t) => {
  const s = setup(t, { mfa: { push: { rate_limit: { max: 100 } } } });
  await s.store.addUser({ username: 'alice' });
  const phone = await addPhone(s, 'alice', null);
  const now = s.clock.now();
  const decided = async (kind: 'approve' | 'deny' | 'fraud' | 'timeout', numberMatching = false) => {
    const r = await openPush(pushRequest('alice', { callingStation: undefined, numberMatching }), s.deps);
    assert.ok(r.ok);
    await s.pending.decide(r.push.id, kind === 'timeout' ? { kind } : { kind, deviceId: phone.id });
    return r.push;
  };
  const approved = await decided('approve');
  assert.deepEqual(await settlePush({ push: approved, typedNumber: undefined, where: STRANGER }, now, s.deps), { ok: true });
  assert.deepEqual(await settlePush({ push: approved, typedNumber: undefined, where: STRANGER }, now, s.deps), { ok: false, reason: 'claimed_elsewhere' });
  assert.deepEqual(await settlePush({ push: await decided('deny'), typedNumber: undefined, where: STRANGER }, now, s.deps), { ok: false, reason: 'push_denied' });
  assert.deepEqual(await settlePush({ push: await decided('fraud'), typedNumber: undefined, where: STRANGER }, now, s.deps), { ok: false, reason: 'fraud' });
  assert.deepEqual(await settlePush({ push: await decided('timeout'), typedNumber: undefined, where: STRANGER }, now, s.deps), { ok: false, reason: 'push_timeout' });

  const numbered = await decided('approve', true);
  const wrong = numbered.number === '10' ? '11' : '10';
  assert.deepEqual(await settlePush({ push: numbered, typedNumber: wrong, where: STRANGER }, now, s.deps), { ok: false, reason: 'number_mismatch', locked: false });
  const matched = await decided('approve', true);
  assert.deepEqual(await settlePush({ push: matched, typedNumber: matched.number, where: STRANGER }, now, s.deps), { ok: true });
});

test('pushVerdict: a held request settles from the outcome alone; a push that is gone timed out', () => {
  assert.deepEqual(pushVerdict({ kind: 'approve', deviceId: 'd' }), { ok: true });
  assert.deepEqual(pushVerdict({ kind: 'locked', deviceId: 'd' }), { ok: false, reason: 'locked' });
  assert.deepEqual(pushVerdict(undefined), { ok: false, reason: 'push_timeout' });
});

test('checkPin: right and wrong PIN; a wrong one counts toward the lock, a right one does not forget it', async (t) => {
  const s = setup(t, { mfa: { lockout: { max_failures: 2 } } });
  const pinHash = await hashPassword('2468');
  const now = s.clock.now();
  const check = (pin: string) => checkPin({ username: 'alice', pinHash, pin, where: STRANGER }, now, s.deps);
  assert.deepEqual(await check('1111'), { ok: false, locked: false });
  assert.deepEqual(await check('2468'), { ok: true });
  assert.deepEqual(await check('1111'), { ok: false, locked: true }, 'the earlier failure still counted');
  assert.equal((await s.store.getUser('alice'))?.lockedUntil, now + s.config.mfa.lockout.duration);
});

test('enrollment: a new one has the configured parameters; it is stored only when a current code of it is typed back', async (t) => {
  const s = setup(t, { mfa: { totp: { digits: 8, period: 60, algorithm: 'SHA256' } } });
  const enrollment = startEnrollment(s.deps.settings);
  assert.equal(enrollment.secret.length, 20);
  assert.deepEqual({ ...enrollment, secret: undefined }, { secret: undefined, algorithm: 'SHA256', digits: 8, period: 60 });
  assert.notDeepEqual(startEnrollment(s.deps.settings).secret, enrollment.secret);

  const now = s.clock.now();
  const code = codeAt(enrollment.secret, now, enrollment);
  const wrong = code === '00000000' ? '11111111' : '00000000';
  assert.deepEqual(await confirmEnrollment({ username: 'dora', enrollment, code: wrong }, now, s.deps), { ok: false, reason: 'bad_code' });
  assert.equal(await s.store.getUser('dora'), undefined, 'nothing stored for a wrong code');
  // A directory user gets a store row; spaces in the typed code are ignored.
  assert.deepEqual(await confirmEnrollment({ username: 'dora', enrollment, code: `${code.slice(0, 4)} ${code.slice(4)}` }, now, s.deps), { ok: true, replaced: false });
  assert.deepEqual((await s.store.getUser('dora'))?.totp, enrollment);
  // The confirming code cannot also sign in.
  const r = await verifyCode({ username: 'dora', user: await s.store.getUser('dora'), where: STRANGER, code }, now, s.deps);
  assert.deepEqual(r, { ok: false, reason: 'replay', locked: false });

  const next = startEnrollment(s.deps.settings);
  const later = now + 60_000;
  assert.deepEqual(await confirmEnrollment({ username: 'dora', enrollment: next, code: codeAt(next.secret, later, next) }, later, s.deps), { ok: true, replaced: true });
});
