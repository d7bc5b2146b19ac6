// Regression tests for the review findings of issue 10 (docs/security.md): each one was a way past the
// second factor or around the lockout on the code before the fix, tried here as an attacker would, over
// real sockets (radclient and raw UDP), a real slapd, the simulated phone and the portal over HTTP.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyPassword } from '../src/auth/password-hash.js';
import { loadConfig } from '../src/config/load.js';
import { createActivation } from '../src/mfa/activation.js';
import { Attr, Code } from '../src/radius/packet.js';
import { MemoryState } from '../src/state/memory.js';
import { SimulatedPhone } from './helpers/phone.js';
import { PortalClient } from './helpers/portal-client.js';
import { radclient } from './helpers/radclient.js';
import { enrollTotp, startTestServer, wrongCodeAt, type TestServer } from './helpers/server.js';
import { startSlapd, SUFFIX, type Slapd } from './helpers/slapd.js';
import { buildAccessRequest, decodeReply, UdpClient } from './helpers/udp.js';

let slapd: Slapd;
before(async () => {
  slapd = await startSlapd({ users: [{ uid: 'alice', password: 'alice-Passw0rd', mail: 'alice.smith@example.com' }], groups: {} });
});
after(() => slapd?.stop());

const ask = (s: TestServer, attributes: Record<string, string>) => radclient(attributes, { port: s.authPort, secret: s.secret });

async function udpClient(t: { after: (fn: () => Promise<void>) => void }): Promise<UdpClient> {
  const c = await UdpClient.open();
  t.after(() => c.close());
  return c;
}

test('finding 1: ALICE is alice everywhere: the portal asks for her second factor, RADIUS takes her code, and failures lock her', async (t) => {
  const s = await startTestServer({
    config: {
      http: { listen: '127.0.0.1:0' },
      first_factor: { type: 'ldap', url: slapd.url, start_tls: true, ca_file: slapd.caFile, bind_dn_template: `uid={user},ou=people,${SUFFIX}`, timeout: '2s' },
      mfa: { lockout: { max_failures: 3, duration: '15m' } },
    },
  });
  t.after(() => s.close());
  const alice = await enrollTotp(s.store, 'alice');
  const base = `http://127.0.0.1:${s.httpPort}`;

  // Before: "ALICE" had no store row, hence no factor, and was signed in with the password alone.
  const portal = new PortalClient(base);
  await portal.get('/portal/sign-in');
  const signIn = await portal.post('/portal/sign-in', { username: 'ALICE', password: 'alice-Passw0rd' });
  assert.equal(signIn.status, 303);
  assert.equal((await portal.get('/portal/')).location, '/portal/sign-in', 'not signed in on the password alone');
  assert.match((await portal.get('/portal/sign-in')).text, /name="code"/, 'asked for alice\'s code');

  const vpn = await ask(s, { 'User-Name': ' ALICE ', 'User-Password': `alice-Passw0rd${alice.codeAt(s.clock.now())}` });
  assert.equal(vpn.code, 'Access-Accept', 'the same person, with her own code');
  assert.equal(s.logs.audits().at(-1)?.reason, 'second_factor_ok');

  // Before: lockUser threw for "Alice" (no row), the third failure got no reply and the count began again.
  s.clock.advance(60_000);
  const codes = ['Alice', 'ALICE', 'alice'].map((name, i) => ({ 'User-Name': name, 'User-Password': `wrong-pw${i}${wrongCodeAt(alice, s.clock.now())}` }));
  for (const attributes of codes) assert.equal((await ask(s, attributes)).code, 'Access-Reject');
  assert.match((await s.store.getUser('alice'))?.lockReason ?? '', /^3 failed attempts/, 'failures under three spellings locked alice');
  assert.equal((await s.store.getUser('Alice')), undefined, 'no second row for another spelling');
});

test('finding 1: with username_attribute every alias the filter matches (mail) is the directory\'s one user', async (t) => {
  const s = await startTestServer({
    config: {
      http: { listen: '127.0.0.1:0' },
      first_factor: {
        type: 'ldap',
        url: slapd.url,
        start_tls: true,
        ca_file: slapd.caFile,
        search: { bind_dn: `cn=radius-svc,${SUFFIX}`, password: 'svc-password', base: `ou=people,${SUFFIX}`, filter: '(|(uid={user})(mail={user}))', username_attribute: 'uid' },
        timeout: '2s',
      },
    },
  });
  t.after(() => s.close());
  const alice = await enrollTotp(s.store, 'alice');
  const portal = new PortalClient(`http://127.0.0.1:${s.httpPort}`);
  await portal.get('/portal/sign-in');
  assert.equal((await portal.post('/portal/sign-in', { username: 'Alice.Smith@example.com', password: 'alice-Passw0rd' })).status, 303);
  assert.equal((await portal.get('/portal/')).location, '/portal/sign-in', 'the alias has alice\'s second factor to pass');
  const vpn = await ask(s, { 'User-Name': 'alice.smith@example.com', 'User-Password': `alice-Passw0rd${alice.codeAt(s.clock.now())}` });
  assert.equal(vpn.code, 'Access-Accept');
  assert.equal(s.logs.audits().at(-1)?.user, 'alice', 'the audit line names who it is');
  assert.equal(s.logs.audits().at(-1)?.login, 'alice.smith@example.com', '... and what was typed');
  assert.equal(await s.store.getUser('alice.smith@example.com'), undefined);
});

test('finding 2: answering every number of a number-matching push gets one guess, not ninety', async (t) => {
  const s = await startTestServer({
    // No lockout and no per-source rate limit: this is about the number alone (both would stop the 180 requests sooner).
    config: {
      http: { listen: '127.0.0.1:0' },
      portal: { enabled: false },
      first_factor: { type: 'none' },
      rate_limits: { source_per_minute: 0 },
      mfa: { default_method: 'push', push: { number_matching: true, timeout: '10s' }, lockout: { max_failures: 0 } },
    },
  });
  t.after(() => s.close());
  await enrollTotp(s.store, 'alice');
  const phone = await SimulatedPhone.activate(`http://127.0.0.1:${s.httpPort}`, (await createActivation(s.store, s.config, 'alice', s.clock.now())).activation_code);
  const udp = await udpClient(t);
  const attempt = (id: number, password: string, state?: Buffer) =>
    buildAccessRequest({ secret: s.secret, identifier: id, userName: 'alice', password, attributes: [[Attr.CallingStationId, '203.0.113.66'], ...(state ? [[Attr.State, state] as [number, Buffer]] : [])] });

  // Ninety requests of one attempt, all joining one push.
  const sent = Array.from({ length: 90 }, (_, i) => attempt(i, 'any password'));
  for (const request of sent) await udp.send(request, s.authPort);
  const states: Buffer[] = [];
  for (let i = 0; i < 90; i++) {
    const reply = await udp.next(5000);
    assert.ok(reply, `challenge ${i}`);
    const id = reply.bytes[1]!;
    const decoded = decodeReply(reply.bytes, sent[id]!, s.secret);
    assert.equal(decoded.packet.code, Code.AccessChallenge);
    states[id] = decoded.packet.attributes.find((a) => a.type === Attr.State)!.value;
  }
  assert.equal(new Set(states.map((b) => b.toString('hex'))).size, 1, 'one outstanding State per push');
  const request = await phone.waitForPending();
  assert.equal((await phone.pending()).body.length, 1, 'one push');

  // Every number but the right one, then the right one last; then the phone approves.
  const numbers = Array.from({ length: 90 }, (_, i) => String(i + 10)).filter((n) => n !== request.number);
  numbers.push(request.number!);
  const answers = numbers.map((n, i) => attempt(100 + i, n, states[i]));
  for (const a of answers) await udp.send(a, s.authPort);
  await s.logs.waitFor((r) => r.reason === 'bad_state' && s.logs.filter({ reason: 'bad_state' }).length >= 89, 5000);
  await phone.answer(request.id, 'approve');
  const decisions = await waitForDecisions(s, 180);
  const byReason = countBy(decisions.map((d) => String(d.reason)));
  assert.equal(byReason.push_approved ?? 0, 0, 'no guess got in');
  assert.equal(byReason.number_mismatch, 1, 'exactly one answer was judged');
  assert.equal(byReason.bad_state, 89);
});

test('finding 3: with first_factor none the portal must have its own first factor', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-sec-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.yaml');
  const head = 'listen: { auth: "127.0.0.1:0" }\nclients: [{ name: nas, address: 127.0.0.1, secret: a-long-enough-secret }]\nfirst_factor: { type: none }\nhttp: { listen: "127.0.0.1:0" }\n';
  writeFileSync(file, head);
  const refused = loadConfig(file);
  assert.equal(refused.ok, false);
  assert.match(refused.ok ? '' : refused.issues.map((i) => `${i.path}: ${i.message}`).join('\n'), /^portal: .*set portal\.first_factor \(local, ldap or radius\) or portal\.enabled: false/m);
  writeFileSync(file, `${head}portal: { first_factor: { type: local } }\n`);
  assert.equal(loadConfig(file).ok, true);

  // Before: any password, for any username (even one that did not exist), passed the portal's first step.
  const s = await startTestServer({ config: { http: { listen: '127.0.0.1:0' }, first_factor: { type: 'none' }, portal: { first_factor: { type: 'local' } } } });
  t.after(() => s.close());
  await enrollTotp(s.store, 'bob', { password: 'bob-pw' });
  const portal = new PortalClient(`http://127.0.0.1:${s.httpPort}`);
  await portal.get('/portal/sign-in');
  assert.equal((await portal.post('/portal/sign-in', { username: 'bob', password: 'anything' })).status, 401);
  assert.equal((await portal.post('/portal/sign-in', { username: 'mallory', password: 'anything' })).status, 401);
  assert.equal(await s.store.getUser('mallory'), undefined, 'no user is created');
  assert.equal((await portal.post('/portal/sign-in', { username: 'bob', password: 'bob-pw' })).status, 303, 'the portal checks the local password');
  // The VPN side still trusts the appliance's password check.
  assert.equal((await ask(s, { 'User-Name': 'bob', 'User-Password': `x${(await enrollTotp(s.store, 'carol')).codeAt(s.clock.now())}` })).code, 'Access-Reject');
});

test('finding 3: an app activation never hands out the existing TOTP secret', async (t) => {
  const s = await startTestServer({ config: { http: { listen: '127.0.0.1:0' } } });
  t.after(() => s.close());
  const dan = await enrollTotp(s.store, 'dan', { password: 'dan-pw' });
  const code = (await createActivation(s.store, s.config, 'dan', s.clock.now(), true)).activation_code;
  const phone = await SimulatedPhone.activate(`http://127.0.0.1:${s.httpPort}`, code);
  const handed = (phone.activation.totp as { secret: string }).secret;
  assert.notEqual(Buffer.from(new (await import('otplib')).ScureBase32Plugin().decode(handed)).toString('hex'), dan.secret.toString('hex'));
  assert.deepEqual((await s.store.getUser('dan'))?.totp?.secret, dan.secret, 'the existing secret stays until the app confirms the new one');
});

test('finding 4: a burst of parallel guesses is not all evaluated before the lock lands; the right one sent last is refused', async (t) => {
  const s = await startTestServer({ config: { mfa: { lockout: { max_failures: 5, duration: '15m' } } } });
  t.after(() => s.close());
  const erin = await enrollTotp(s.store, 'erin', { password: 'erin-pw' });
  const udp = await udpClient(t);
  const now = s.clock.now();
  const guesses = Array.from({ length: 19 }, (_, i) => buildAccessRequest({ secret: s.secret, identifier: i, userName: 'erin', password: `guess${i}${wrongCodeAt(erin, now)}` }));
  guesses.push(buildAccessRequest({ secret: s.secret, identifier: 19, userName: 'erin', password: `erin-pw${erin.codeAt(now)}` }));
  for (const g of guesses) await udp.send(g, s.authPort);
  const codes: number[] = [];
  for (let i = 0; i < 20; i++) {
    const reply = await udp.next(15_000);
    assert.ok(reply, `reply ${i}`);
    codes[reply.bytes[1]!] = reply.bytes[0]!;
  }
  assert.equal(codes[19], Code.AccessReject, 'the right password + code, sent last, does not get past the lock');
  assert.ok(codes.every((c) => c === Code.AccessReject));
  const reasons = countBy(s.logs.audits('erin').filter((a) => a.msg === 'decision').map((a) => String(a.reason)));
  assert.ok((reasons.bad_password ?? 0) <= 5, `at most max_failures passwords were checked: ${JSON.stringify(reasons)}`);
  assert.equal(reasons.locked, 20 - (reasons.bad_password ?? 0));
  assert.ok((await s.store.getUser('erin'))?.lockedUntil);
});

test('security counts are kept apart from per-address counts: rotating addresses cannot evict a user\'s failures', async () => {
  const state = new MemoryState(() => 0);
  assert.equal(await state.increment('fail:alice', 60_000), 1);
  for (let i = 0; i < 150_000; i++) await state.countBySource(`portal-sign-in:2001:db8::${i.toString(16)}`, 60_000);
  assert.equal(await state.increment('fail:alice', 60_000), 2, 'still counting');
  // The security table has its own bound, and refuses (Infinity) rather than forgets.
  const small = new MemoryState(() => 0, 2);
  await small.increment('fail:a', 60_000);
  await small.increment('fail:b', 60_000);
  assert.equal(await small.increment('fail:c', 60_000), Infinity);
  assert.equal(await small.increment('fail:a', 60_000), 2);
});

test('without a Calling-Station-Id two logins of one user make two pushes (they are not joined)', async (t) => {
  const s = await startTestServer({ config: { http: { listen: '127.0.0.1:0' }, portal: { enabled: false }, first_factor: { type: 'none' }, mfa: { default_method: 'push', push: { timeout: '5s' } } } });
  t.after(() => s.close());
  await enrollTotp(s.store, 'fay');
  const phone = await SimulatedPhone.activate(`http://127.0.0.1:${s.httpPort}`, (await createActivation(s.store, s.config, 'fay', s.clock.now())).activation_code);
  const udp = await udpClient(t);
  for (const id of [1, 2]) await udp.send(buildAccessRequest({ secret: s.secret, identifier: id, userName: 'fay', password: 'x' }), s.authPort);
  const deadline = Date.now() + 5000;
  while ((await phone.pending()).body.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const pending = (await phone.pending()).body;
  assert.equal(pending.length, 2, 'each login is its own push: approving one lets in only that one');
  await phone.answer(pending[0]!.id, 'deny');
  await phone.answer(pending[1]!.id, 'deny');
  assert.equal((await waitForDecisions(s, 2)).length, 2);
});

async function waitForDecisions(s: TestServer, n: number) {
  await s.logs.waitFor(() => s.logs.filter({ msg: 'decision' }).length >= n, 10_000);
  return s.logs.filter({ msg: 'decision' });
}

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

test('a lock or a fraud report ends the user\'s portal sessions at their next request', async (t) => {
  const s = await startTestServer({ config: { http: { listen: '127.0.0.1:0' } } });
  t.after(() => s.close());
  const gil = await enrollTotp(s.store, 'gil', { password: 'gil-pw' });
  const portal = new PortalClient(`http://127.0.0.1:${s.httpPort}`);
  await portal.signIn('gil', 'gil-pw', gil.codeAt(s.clock.now()));
  assert.equal((await portal.get('/portal/')).status, 200);
  // As a fraud report does (through any door: the API, the CLI in another process).
  await s.store.lockUser('gil', Number.MAX_SAFE_INTEGER, 'fraud reported from device x');
  assert.equal((await portal.get('/portal/')).location, '/portal/sign-in', 'signed out by the lock');
  assert.equal(s.logs.filter({ event: 'portal_session_ended', user: 'gil', reason: 'locked' }).length, 1);
  await s.store.unlockUser('gil');
  assert.equal((await portal.get('/portal/')).location, '/portal/sign-in', 'the ended session does not come back with the unlock');
});

test('audit: bad_state and locked decisions name the method; radius_pushes_pending counts only pushes still waiting', async (t) => {
  const s = await startTestServer({
    config: { metrics: { listen: '127.0.0.1:0' }, http: { listen: '127.0.0.1:0' }, first_factor: { type: 'none' }, portal: { enabled: false }, mfa: { default_method: 'push', push: { timeout: '5s' } } },
  });
  t.after(() => s.close());
  await enrollTotp(s.store, 'hana');
  const phone = await SimulatedPhone.activate(`http://127.0.0.1:${s.httpPort}`, (await createActivation(s.store, s.config, 'hana', s.clock.now())).activation_code);
  const gauge = async () => Number(/^radius_pushes_pending (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text())?.[1]);
  const login = ask(s, { 'User-Name': 'hana', 'User-Password': 'x', 'Calling-Station-Id': '203.0.113.9' });
  const request = await phone.waitForPending();
  assert.equal(await gauge(), 1);
  await phone.answer(request.id, 'deny');
  assert.equal((await login).code, 'Access-Reject');
  assert.equal(await gauge(), 0, 'a decided push is no longer waiting');

  await ask(s, { 'User-Name': 'hana', 'User-Password': '12', State: '0x6e6f2d737563682d7374617465' });
  assert.deepEqual(pick(s.logs.audits('hana').at(-1)), { reason: 'bad_state', method: 'push' });
  await s.store.lockUser('hana', s.clock.now() + 60_000, 'test');
  await ask(s, { 'User-Name': 'hana', 'User-Password': 'x' });
  assert.deepEqual(pick(s.logs.audits('hana').at(-1)), { reason: 'locked', method: 'push' });
});

function pick(line: Record<string, unknown> | undefined) {
  return { reason: line?.reason, method: line?.method };
}

test('finding 4 at the portal: parallel sign-ins are not all checked before the lock lands; the right password sent last is refused', async (t) => {
  const s = await startTestServer({ config: { http: { listen: '127.0.0.1:0' }, mfa: { lockout: { max_failures: 5, duration: '15m' } } } });
  t.after(() => s.close());
  await enrollTotp(s.store, 'gus', { password: 'gus-pw' });
  const base = `http://127.0.0.1:${s.httpPort}`;
  const page = await fetch(`${base}/portal/sign-in`);
  const cookie = page.headers.getSetCookie()[0]!.split(';')[0]!;
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;
  // From twenty addresses (a proxy on this host says which), so the per-address limit is not what stops them.
  const post = (password: string, i: number) =>
    fetch(`${base}/portal/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': `198.51.100.${i}` },
      body: new URLSearchParams({ _csrf: csrf, username: 'gus', password }),
    }).then((r) => r.status);
  const statuses = await Promise.all([...Array.from({ length: 19 }, (_, i) => post(`guess${i}`, i)), post('gus-pw', 19)]);
  assert.equal(statuses[19], 401, 'the right password, sent last, does not get past the lock');
  const reasons = countBy(s.logs.filter({ event: 'portal_sign_in' }).map((l) => String(l.reason)));
  assert.ok((reasons.bad_password ?? 0) <= 5, `at most max_failures passwords were checked: ${JSON.stringify(reasons)}`);
  assert.equal((await s.store.getUser('gus'))?.lockScope, 'unfamiliar');
});

test('two activations racing to set the first PIN: one sets it, the other is refused (never a silent replacement)', async (t) => {
  const s = await startTestServer({ config: { http: { listen: '127.0.0.1:0' }, mfa: { push: { pin: 'optional' } } } });
  t.after(() => s.close());
  await enrollTotp(s.store, 'hugo');
  const base = `http://127.0.0.1:${s.httpPort}`;
  const codes = [await createActivation(s.store, s.config, 'hugo', s.clock.now()), await createActivation(s.store, s.config, 'hugo', s.clock.now())];
  const results = await Promise.allSettled(codes.map((a, i) => SimulatedPhone.activate(base, a.activation_code, { pin: i ? '2222' : '1111' })));
  const won = results.findIndex((r) => r.status === 'fulfilled');
  assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  assert.match(String((results[1 - won] as PromiseRejectedResult).reason), /WRONG_PIN/);
  const pinHash = (await s.store.getUser('hugo'))!.pinHash!;
  assert.equal(await verifyPassword(pinHash, won ? '2222' : '1111'), true, 'the PIN is the one of the activation that succeeded');
});
