// Every route of the Mobile App API and the portal through fastify's inject(): no socket, a fake clock,
// memory state and an in-memory store. Each route's success and its main refusal; the end-to-end
// tests (portal.test.ts, push.test.ts, pwa*.test.ts) keep real HTTP, real browsers and real RADIUS.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { localFirstFactor } from '../src/auth/local.js';
import { configSchema } from '../src/config/schema.js';
import type { AccessDeps } from '../src/flow/access.js';
import { Policy } from '../src/flow/policy.js';
import { RateLimiter } from '../src/flow/rate-limit.js';
import { openPush, secondFactorSettings } from '../src/flow/second-factor.js';
import { usernameRules } from '../src/flow/username.js';
import { buildHttp } from '../src/http/server.js';
import { createLogger } from '../src/log/logger.js';
import { createActivation } from '../src/mfa/activation.js';
import { parseBase32Secret } from '../src/mfa/totp-secret.js';
import { MemoryState } from '../src/state/memory.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { newKeyPair, publicKeyBase64, sign } from './helpers/phone.js';
import { baseConfig, codeAt, createClock, enrollTotp, LogCapture, mergeConfig, type ConfigInput } from './helpers/server.js';

async function setup(t: TestContext, over: ConfigInput = {}) {
  const input = mergeConfig(baseConfig('127.0.0.1', 'unused'), { store: { path: ':memory:' }, http: { listen: '127.0.0.1:0' }, mfa: { lockout: { max_failures: 3 } } });
  const config = configSchema.parse(mergeConfig(input, over));
  if (config.first_factor.type !== 'local') throw new Error('the tests sign in with local passwords');
  const clock = createClock();
  const store = openSqliteStore(config.store, randomBytes(32), { now: clock.now });
  const state = new MemoryState(clock.now);
  const pending = state.pushes();
  const logs = new LogCapture();
  const logger = createLogger('info', logs);
  const usernames = usernameRules(config.usernames.realms);
  const firstFactor = localFirstFactor(config.first_factor.password_hash, store, logger);
  const access: AccessDeps = {
    config,
    settings: secondFactorSettings(config),
    policy: new Policy(config, usernames),
    store,
    state,
    firstFactor,
    portalFirstFactor: firstFactor,
    usernames,
    pending,
    pushSender: undefined,
    rates: new RateLimiter(() => performance.now()),
    now: clock.now,
  };
  const app = await buildHttp({ config: () => config, store, state, pending, access: () => access, logger, now: clock.now });
  t.after(async () => {
    await app.close();
    await pending.close();
    store.close();
  });
  return { app, config, clock, store, state, pending, access, logs };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/** A phone activated through the API: its key pair and bearer token. */
async function activatePhone(s: Setup, username: string, withTotp = false) {
  if (!(await s.store.getUser(username))) await s.store.addUser({ username });
  const { activation_code } = await createActivation(s.store, s.config, username, s.clock.now(), withTotp);
  const keys = await newKeyPair();
  const r = await s.app.inject({ method: 'POST', url: '/api/v1/activation', payload: { activation_code, device_name: 'Pixel', public_key: await publicKeyBase64(keys) } });
  assert.equal(r.statusCode, 201, r.body);
  const body = r.json() as { device_id: string; device_token: string; totp?: { secret: string; digits: number; period: number } };
  return { keys, id: body.device_id, token: body.device_token, totp: body.totp, code: activation_code, auth: { authorization: `Bearer ${body.device_token}` } };
}

function errorCode(r: LightMyRequestResponse): string {
  return (r.json() as { error: { code: string } }).error.code;
}

function assertRefused(r: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(r.statusCode, status, r.body);
  assert.equal(errorCode(r), code);
}

test('API: openapi.json and web-push are public', async (t) => {
  const s = await setup(t);
  const spec = await s.app.inject({ url: '/api/v1/openapi.json' });
  assert.equal(spec.statusCode, 200);
  assert.ok((spec.json() as { paths: Record<string, unknown> }).paths['/api/v1/activation']);
  const web = await s.app.inject({ url: '/api/v1/web-push' });
  assert.deepEqual(web.json(), { vapid_public_key: null });
});

test('API: POST /activation gives a device token once; the same code again is refused', async (t) => {
  const s = await setup(t);
  const phone = await activatePhone(s, 'alice');
  assert.match(phone.token, /^[A-Za-z0-9_-]{40,}$/);
  const again = await s.app.inject({ method: 'POST', url: '/api/v1/activation', payload: { activation_code: phone.code, device_name: 'Other', public_key: await publicKeyBase64(phone.keys) } });
  assertRefused(again, 400, 'ACTIVATION_INVALID');
});

test('API: GET /device with the token, 401 without', async (t) => {
  const s = await setup(t);
  const phone = await activatePhone(s, 'alice');
  const r = await s.app.inject({ url: '/api/v1/device', headers: phone.auth });
  assert.deepEqual(r.json(), { device_id: phone.id, username: 'alice', name: 'Pixel', push_token_state: 'none' });
  const anonymous = await s.app.inject({ url: '/api/v1/device' });
  assertRefused(anonymous, 401, 'UNAUTHORIZED');
});

test('API: POST /push-token stores a token; a malformed one is refused', async (t) => {
  const s = await setup(t);
  const phone = await activatePhone(s, 'alice');
  const ok = await s.app.inject({ method: 'POST', url: '/api/v1/push-token', headers: phone.auth, payload: { push_token: 'fcm-registration-token-1' } });
  assert.equal(ok.statusCode, 204);
  assert.equal((await s.store.devices.list('alice'))[0]?.pushToken, 'fcm-registration-token-1');
  const bad = await s.app.inject({ method: 'POST', url: '/api/v1/push-token', headers: phone.auth, payload: { push_token: 'webpush:{not json' } });
  assertRefused(bad, 400, 'INVALID_PUSH_TOKEN');
});

test('API: GET /pending lists the push; POST /requests/:id/answer approves it when signed, refuses a bad signature', async (t) => {
  const s = await setup(t);
  const phone = await activatePhone(s, 'alice');
  const opened = await openPush({ username: 'alice', user: undefined, clientName: 'test-nas', nasIp: '192.0.2.1', nasIdentifier: 'vpn', callingStation: undefined, numberMatching: false }, s.access);
  assert.ok(opened.ok);
  const id = opened.push.id;
  const list = await s.app.inject({ url: '/api/v1/pending', headers: phone.auth });
  assert.deepEqual((list.json() as { id: string }[]).map((p) => p.id), [id]);

  const forged = await s.app.inject({ method: 'POST', url: `/api/v1/requests/${id}/answer`, headers: phone.auth, payload: { decision: 'approve', signature: await sign(phone.keys, `${id}.deny`) } });
  assertRefused(forged, 403, 'BAD_SIGNATURE');
  const unknown = await s.app.inject({ method: 'POST', url: '/api/v1/requests/nope/answer', headers: phone.auth, payload: { decision: 'approve', signature: await sign(phone.keys, 'nope.approve') } });
  assert.equal(errorCode(unknown), 'REQUEST_NOT_FOUND');

  const r = await s.app.inject({ method: 'POST', url: `/api/v1/requests/${id}/answer`, headers: phone.auth, payload: { decision: 'approve', signature: await sign(phone.keys, `${id}.approve`) } });
  assert.deepEqual(r.json(), { status: 'approved' });
  assert.equal((await s.pending.get(id))?.outcome?.kind, 'approve');
  const twice = await s.app.inject({ method: 'POST', url: `/api/v1/requests/${id}/answer`, headers: phone.auth, payload: { decision: 'deny', signature: await sign(phone.keys, `${id}.deny`) } });
  assert.equal(errorCode(twice), 'ALREADY_ANSWERED');
});

test('API: POST /totp/confirm stores the activation secret with a current code; a wrong code or none waiting is refused', async (t) => {
  const s = await setup(t);
  const plain = await activatePhone(s, 'bob');
  const none = await s.app.inject({ method: 'POST', url: '/api/v1/totp/confirm', headers: plain.auth, payload: { code: '123456' } });
  assertRefused(none, 404, 'NO_ENROLLMENT');

  const phone = await activatePhone(s, 'alice', true);
  const parsed = parseBase32Secret(phone.totp!.secret);
  assert.ok(parsed.ok);
  const code = codeAt(parsed.secret, s.clock.now());
  const wrong = await s.app.inject({ method: 'POST', url: '/api/v1/totp/confirm', headers: phone.auth, payload: { code: code === '000000' ? '111111' : '000000' } });
  assert.equal(errorCode(wrong), 'BAD_CODE');
  assert.equal((await s.store.getUser('alice'))?.totp, null);
  const ok = await s.app.inject({ method: 'POST', url: '/api/v1/totp/confirm', headers: phone.auth, payload: { code } });
  assert.deepEqual(ok.json(), { status: 'enrolled' });
  assert.deepEqual((await s.store.getUser('alice'))?.totp?.secret, parsed.secret);
});

test('API: DELETE /device deregisters; the token then no longer works', async (t) => {
  const s = await setup(t);
  const phone = await activatePhone(s, 'alice');
  assert.equal((await s.app.inject({ method: 'DELETE', url: '/api/v1/device', headers: phone.auth })).statusCode, 204);
  assert.equal((await s.app.inject({ method: 'DELETE', url: '/api/v1/device', headers: phone.auth })).statusCode, 401);
});

/** A browser over inject(): a cookie jar and the page's CSRF token. */
class Browser {
  private readonly cookies = new Map<string, string>();
  csrf = '';
  constructor(private readonly app: FastifyInstance) {}

  async get(url: string): Promise<LightMyRequestResponse> {
    return this.keep(await this.app.inject({ method: 'GET', url, headers: { cookie: this.cookie } }));
  }

  async post(url: string, form: Record<string, string> = {}, csrf: string | null = this.csrf): Promise<LightMyRequestResponse> {
    const payload = new URLSearchParams({ ...(csrf === null ? {} : { _csrf: csrf }), ...form }).toString();
    return this.keep(await this.app.inject({ method: 'POST', url, payload, headers: { cookie: this.cookie, 'content-type': 'application/x-www-form-urlencoded' } }));
  }

  private get cookie(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  private keep(r: LightMyRequestResponse): LightMyRequestResponse {
    for (const c of r.cookies as { name: string; value: string; maxAge?: number }[]) {
      if (c.maxAge === 0) this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
    this.csrf = /name="_csrf" value="([^"]+)"/.exec(r.body)?.[1] ?? this.csrf;
    return r;
  }
}

async function signedIn(s: Setup, username = 'alice') {
  const user = await enrollTotp(s.store, username, { password: 'pw-of-alice' });
  const b = new Browser(s.app);
  await b.get('/portal/sign-in');
  assert.equal((await b.post('/portal/sign-in', { username, password: 'pw-of-alice' })).statusCode, 303);
  await b.get('/portal/sign-in');
  const r = await b.post('/portal/sign-in/code', { code: user.codeAt(s.clock.now()) });
  assert.equal(r.headers.location, '/portal/');
  await b.get('/portal/');
  return { b, user };
}

test('portal: the sign-in page; a form without the CSRF token changes nothing; a wrong password is refused', async (t) => {
  const s = await setup(t);
  await enrollTotp(s.store, 'alice', { password: 'pw-of-alice' });
  const b = new Browser(s.app);
  const page = await b.get('/portal/sign-in');
  assert.equal(page.statusCode, 200);
  assert.ok(b.csrf);
  assert.equal((await b.post('/portal/sign-in', { username: 'alice', password: 'pw-of-alice' }, null)).statusCode, 403);
  const wrong = await b.post('/portal/sign-in', { username: 'alice', password: 'not-it' });
  assert.equal(wrong.statusCode, 401);
  assert.ok(s.logs.records.some((l) => l.event === 'portal_sign_in' && l.reason === 'bad_password'));
});

test('portal: password then code signs in (a fresh session); a wrong code is refused with the typed reason', async (t) => {
  const s = await setup(t);
  const alice = await enrollTotp(s.store, 'alice', { password: 'pw-of-alice' });
  const b = new Browser(s.app);
  await b.get('/portal/sign-in');
  const first = await b.post('/portal/sign-in', { username: 'alice', password: 'pw-of-alice' });
  assert.equal(first.headers.location, '/portal/sign-in');
  await b.get('/portal/sign-in');
  const now = s.clock.now();
  const wrong = await b.post('/portal/sign-in/code', { code: alice.codeAt(now) === '000000' ? '111111' : '000000' });
  assert.equal(wrong.statusCode, 401);
  assert.ok(s.logs.records.some((l) => l.event === 'portal_sign_in' && l.reason === 'bad_code'));
  const ok = await b.post('/portal/sign-in/code', { code: alice.codeAt(now) });
  assert.equal(ok.statusCode, 303);
  assert.equal(ok.headers.location, '/portal/');
  const account = await b.get('/portal/');
  assert.equal(account.statusCode, 200);
  assert.match(account.body, /alice/);
});

test('portal: a push sign-in waits, then completes on approval; a denial is refused; no phone cannot push', async (t) => {
  const s = await setup(t);
  await s.store.addUser({ username: 'carol' });
  const { hashPassword } = await import('../src/auth/password-hash.js');
  await s.store.setPasswordHash('carol', await hashPassword('pw-of-carol'));
  await activatePhone(s, 'carol');
  const signIn = async () => {
    const b = new Browser(s.app);
    await b.get('/portal/sign-in');
    // Only a phone: the push goes out at once.
    assert.equal((await b.post('/portal/sign-in', { username: 'carol', password: 'pw-of-carol' })).headers.location, '/portal/sign-in');
    await b.get('/portal/sign-in');
    return b;
  };
  const b = await signIn();
  assert.deepEqual((await b.get('/portal/sign-in/push/status')).json(), { state: 'waiting', approved: false, number_required: false });
  assert.equal((await b.post('/portal/sign-in/push/complete')).statusCode, 202);
  const [push] = await s.pending.openFor('carol');
  await s.pending.decide(push!.id, { kind: 'approve', deviceId: 'd' });
  const done = await b.post('/portal/sign-in/push/complete');
  assert.equal(done.headers.location, '/portal/');

  const denied = await signIn();
  const [next] = await s.pending.openFor('carol');
  await s.pending.decide(next!.id, { kind: 'deny', deviceId: 'd' });
  assert.equal((await denied.post('/portal/sign-in/push/complete')).statusCode, 401);
  assert.ok(s.logs.records.some((l) => l.event === 'portal_sign_in' && l.reason === 'push_denied'));

  // A code user has no phone: asking for a push is refused, the code form stays.
  await enrollTotp(s.store, 'alice', { password: 'pw-of-alice' });
  const a = new Browser(s.app);
  await a.get('/portal/sign-in');
  await a.post('/portal/sign-in', { username: 'alice', password: 'pw-of-alice' });
  await a.get('/portal/sign-in');
  assert.equal((await a.post('/portal/sign-in/push')).statusCode, 503);
  assert.ok(s.logs.records.some((l) => l.event === 'portal_sign_in' && l.reason === 'no_device'));
  assert.equal((await a.post('/portal/sign-in/cancel')).headers.location, '/portal/sign-in');
});

test('portal: a new authenticator is set up with a current code of it; a wrong code keeps the old one', async (t) => {
  const s = await setup(t);
  const { b, user } = await signedIn(s);
  assert.equal((await b.post('/portal/totp/start')).headers.location, '/portal/totp');
  const page = await b.get('/portal/totp');
  const secret = /secret=([A-Z2-7]+)/.exec(decodeURIComponent(page.body))?.[1];
  assert.ok(secret, 'the page carries the otpauth URI');
  const parsed = parseBase32Secret(secret);
  assert.ok(parsed.ok);
  s.clock.advance(60_000);
  const code = codeAt(parsed.secret, s.clock.now());
  const wrong = await b.post('/portal/totp/confirm', { code: code === '000000' ? '111111' : '000000' });
  assert.equal(wrong.statusCode, 400);
  assert.deepEqual((await s.store.getUser('alice'))?.totp?.secret, user.secret);
  assert.equal((await b.post('/portal/totp/confirm', { code })).headers.location, '/portal/');
  assert.deepEqual((await s.store.getUser('alice'))?.totp?.secret, parsed.secret);
});

test('portal: method selection is refused while switched off, saved when on', async (t) => {
  const off = await setup(t);
  const { b } = await signedIn(off);
  assert.equal((await b.post('/portal/method', { method: 'totp' })).statusCode, 403);
  const on = await setup(t, { portal: { allow_method_selection: true } });
  const { b: b2 } = await signedIn(on);
  assert.equal((await b2.post('/portal/method', { method: 'push' })).statusCode, 400, 'no phone yet');
  assert.equal((await b2.post('/portal/method', { method: 'totp' })).headers.location, '/portal/');
  assert.equal((await on.store.getUser('alice'))?.method, 'totp');
});

test('portal: an activation code is shown, unless switched off', async (t) => {
  const s = await setup(t);
  const { b } = await signedIn(s);
  const r = await b.post('/portal/activation');
  assert.equal(r.statusCode, 200);
  assert.match(r.body, /\d{4}-\d{4}-\d{4}/);
  const off = await setup(t, { portal: { allow_mobile_app_activation: false } });
  const { b: b2 } = await signedIn(off);
  assert.equal((await b2.post('/portal/activation')).statusCode, 403);
});

test('portal: a phone is removed; an unknown one is not found', async (t) => {
  const s = await setup(t);
  const { b } = await signedIn(s);
  const phone = await activatePhone(s, 'alice');
  assert.equal((await b.post(`/portal/devices/${phone.id}/remove`)).statusCode, 303);
  assert.deepEqual(await s.store.devices.list('alice'), []);
  assert.equal((await b.post('/portal/devices/nope/remove')).statusCode, 404);
});

test('portal: a PIN is set; a malformed one is refused', async (t) => {
  const s = await setup(t, { mfa: { push: { pin: 'optional' } } });
  const { b } = await signedIn(s);
  assert.equal((await b.post('/portal/pin', { pin: '12', pin2: '12' })).statusCode, 400);
  assert.equal((await b.post('/portal/pin', { pin: '2468', pin2: '2468' })).headers.location, '/portal/');
  assert.notEqual((await s.store.getUser('alice'))?.pinHash, null);
});

test('portal: sign-out ends the session; the settings page then sends to sign-in; /app/ is served', async (t) => {
  const s = await setup(t);
  const { b } = await signedIn(s);
  assert.equal((await b.post('/portal/sign-out')).headers.location, '/portal/sign-in?signed_out');
  const after = await b.get('/portal/');
  assert.equal(after.statusCode, 303);
  assert.equal(after.headers.location, '/portal/sign-in');
  assert.equal((await s.app.inject({ url: '/app/' })).statusCode, 200);
});
