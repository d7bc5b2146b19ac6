// Smart lockout over real radclient: a spray from elsewhere does not lock a user out of a source they
// signed in from; the same wrong password counts once; a wrong code after a right password counts twice;
// argon2 parameters change without a password reset. And the timing of refusals that need no check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { boundedFirstFactor, CheckTimes } from '../src/auth/bounded-first-factor.js';
import type { FirstFactor } from '../src/auth/first-factor.js';
import { hashPassword } from '../src/auth/password-hash.js';
import { lockoutView } from '../src/flow/lockout.js';
import { runCli } from './helpers/cli.js';
import { freeTcpPort } from '../scripts/engines/ports.js';
import { radclient } from './helpers/radclient.js';
import { startServe } from './helpers/serve-process.js';
import { enrollTotp, startTestServer, wrongCodeAt, type TestServer } from './helpers/server.js';

const HOME = '203.0.113.7';
const ask = (s: TestServer, user: string, password: string, from: string) =>
  radclient({ 'User-Name': user, 'User-Password': password, 'Calling-Station-Id': from }, { port: s.authPort, secret: s.secret });

async function server(t: { after: (fn: () => Promise<void>) => void }, config: Record<string, unknown> = {}) {
  const s = await startTestServer({ config: { mfa: { lockout: { max_failures: 3, duration: '15m' } }, ...config } });
  t.after(() => s.close());
  return s;
}

test('a spray from elsewhere locks the user for strangers, not at the source they signed in from', async (t) => {
  const s = await server(t, { metrics: { listen: '127.0.0.1:0' } });
  const ann = await enrollTotp(s.store, 'ann', { password: 'ann-pw' });
  assert.equal((await ask(s, 'ann', `ann-pw${ann.codeAt(s.clock.now())}`, HOME)).code, 'Access-Accept');
  s.clock.advance(60_000);

  for (let i = 0; i < 3; i++) assert.equal((await ask(s, 'ann', `guess${i}`, `198.51.100.${i}`)).code, 'Access-Reject');
  const locked = await s.store.getUser('ann');
  assert.equal(locked?.lockScope, 'unfamiliar');
  assert.match(locked?.lockReason ?? '', /^3 failed attempts from 198\.51\.100\.2 /);
  // A stranger with the right password and code is refused, without a check ...
  assert.equal((await ask(s, 'ann', `ann-pw${ann.codeAt(s.clock.now())}`, '198.51.100.99')).code, 'Access-Reject');
  assert.equal(s.logs.audits('ann').at(-1)?.reason, 'locked');
  // ... while ann at home gets in.
  s.clock.advance(30_000);
  assert.equal((await ask(s, 'ann', `ann-pw${ann.codeAt(s.clock.now())}`, HOME)).code, 'Access-Accept');
  const view = await lockoutView('ann', s);
  assert.deepEqual(view.familiar.map((f) => f.source), [HOME]);
  const warned = s.logs.filter({ event: 'user_locked', user: 'ann' });
  assert.deepEqual(warned.map((w) => [w.level, w.kind, w.source]), [['warn', 'unfamiliar', '198.51.100.2']]);
  const metrics = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
  assert.match(metrics, /^radius_lockouts_total\{kind="unfamiliar"\} 1$/m);
  assert.match(metrics, /^radius_first_factor_checks_total [1-9]\d*$/m, 'the checks went through the queue');
  assert.match(metrics, /^radius_first_factor_shed_total 0$/m);
});

test("the user signing in at their usual place gives a sprayer elsewhere no fresh tries; a sign-in from a stranger's place does", async (t) => {
  const s = await server(t);
  const dee = await enrollTotp(s.store, 'dee', { password: 'dee-pw' });
  assert.equal((await ask(s, 'dee', `dee-pw${dee.codeAt(s.clock.now())}`, HOME)).code, 'Access-Accept');
  for (let i = 0; i < 2; i++) await ask(s, 'dee', `spray${i}`, `198.51.100.${i}`);
  s.clock.advance(30_000);
  assert.equal((await ask(s, 'dee', `dee-pw${dee.codeAt(s.clock.now())}`, HOME)).code, 'Access-Accept');
  assert.deepEqual((await lockoutView('dee', s)).failures.map((f) => [f.source, f.count]), [[null, 2]], 'the strangers\' count stays');
  await ask(s, 'dee', 'spray2', '198.51.100.2');
  assert.equal((await s.store.getUser('dee'))?.lockScope, 'unfamiliar', 'the third stranger failure locks');

  const eve = await enrollTotp(s.store, 'eve', { password: 'eve-pw' });
  await ask(s, 'eve', 'typo', '192.0.2.50');
  assert.equal((await ask(s, 'eve', `eve-pw${eve.codeAt(s.clock.now())}`, '192.0.2.50')).code, 'Access-Accept');
  assert.deepEqual((await lockoutView('eve', s)).failures, [], 'signed in from the place that counted it');
});

test('the same wrong password again counts once, and is refused without a new check', async (t) => {
  const s = await server(t);
  await enrollTotp(s.store, 'ben', { password: 'ben-pw' });
  for (let i = 0; i < 6; i++) assert.equal((await ask(s, 'ben', 'the same typo', '198.51.100.1')).code, 'Access-Reject');
  assert.equal((await s.store.getUser('ben'))?.lockedUntil, null, 'six tries of one password are one failure');
  assert.deepEqual((await lockoutView('ben', s)).failures.map((f) => f.count), [1]);
  assert.deepEqual(new Set(s.logs.audits('ben').map((a) => a.reason)), new Set(['bad_password']));
});

test('at a familiar source failures count apart; reaching the limit costs the source its place', async (t) => {
  const s = await server(t);
  const cy = await enrollTotp(s.store, 'cy', { password: 'cy-pw' });
  assert.equal((await ask(s, 'cy', `cy-pw${cy.codeAt(s.clock.now())}`, HOME)).code, 'Access-Accept');
  for (let i = 0; i < 2; i++) await ask(s, 'cy', `typo${i}`, HOME);
  assert.deepEqual((await lockoutView('cy', s)).failures.map((f) => [f.source, f.count]), [[HOME, 2]]);
  await ask(s, 'cy', 'typo2', HOME);
  const view = await lockoutView('cy', s);
  assert.deepEqual(view.familiar, [], 'no longer familiar');
  assert.equal((await s.store.getUser('cy'))?.lockScope, 'unfamiliar', 'and so locked there too');
});

test('a stored hash with other argon2 parameters still works and is re-hashed with first_factor.password_hash', async (t) => {
  const params = { memory: 8_192, time: 1, parallelism: 1 };
  const s = await server(t, { first_factor: { type: 'local', password_hash: params } });
  // As imported from another system (the library's defaults: m=64 MiB, t=3, p=4).
  const old = await hashPassword('dee-pw', { memory: 65_536, time: 3, parallelism: 4 });
  await s.store.addUser({ username: 'dee', passwordHash: old, method: 'none' });
  assert.equal((await ask(s, 'dee', 'dee-pw', HOME)).code, 'Access-Accept');
  await s.logs.waitFor({ event: 'password_rehashed', user: 'dee' });
  const rehashed = (await s.store.getUser('dee'))?.passwordHash ?? '';
  assert.match(rehashed, /^\$argon2id\$v=19\$m=8192,p=1,t=1\$/);
  assert.equal((await ask(s, 'dee', 'dee-pw', HOME)).code, 'Access-Accept', 'the new hash works');
  assert.equal((await ask(s, 'dee', 'wrong', HOME)).code, 'Access-Reject');
});

test('an unknown user is refused after the same delays as a wrong password (two-sample Kolmogorov-Smirnov, virtual time)', async () => {
  // The backend's checks take known times (20-60 ms, seeded) on a virtual clock, so the comparison
  // measures the equalizer and not the machine: a refusal without a check must wait like one with.
  const random = seeded(42);
  const time = new VirtualTime();
  const inner: FirstFactor = {
    type: 'test',
    cheapReject: (user) => (user ? undefined : 'unknown_user'),
    async check() {
      await time.sleep(20 + 40 * random());
      return { kind: 'reject', reason: 'bad_password' };
    },
  };
  const ff = boundedFirstFactor(inner, {
    concurrency: 1000,
    maxQueued: 1000,
    now: time.now,
    clock: time.now,
    sleep: time.sleep,
    logger: pino({ level: 'silent' }),
    times: new CheckTimes(256, seeded(7)),
  });
  const known = { username: 'k', method: null, passwordHash: 'x', totp: null, lockedUntil: null, lockReason: null, lockScope: null, pinHash: null, createdAt: 0 };
  let n = 0;
  const timed = async (user: typeof known | undefined) => {
    const t0 = time.now();
    await ff.check(`user${n++}`, 'pw', user);
    return time.now() - t0;
  };
  await time.run(Promise.all(Array.from({ length: 256 }, () => timed(known))));
  const wrong: number[] = [];
  const unknown: number[] = [];
  for (let round = 0; round < 4; round++) {
    const batch = await time.run(Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? timed(known) : timed(undefined)))));
    batch.forEach((ms, i) => (i % 2 ? wrong : unknown).push(ms));
  }
  const d = ksStatistic(wrong, unknown);
  // Critical value at alpha = 0.01 for n = m = 200: 1.63 * sqrt(2 / 200) = 0.163.
  assert.ok(d < 0.163, `distributions differ: D = ${d.toFixed(3)}`);
  assert.ok(Math.min(...unknown) >= 20, 'an unknown user is never answered at once');
});

/** mulberry32: a small seeded generator, so the run is the same every time. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Timers on a virtual clock: run() fires them in time order until the given promise settles. */
class VirtualTime {
  private t = 0;
  private timers: { at: number; fire: () => void }[] = [];
  readonly now = () => this.t;
  readonly sleep = (ms: number) => new Promise<void>((fire) => this.timers.push({ at: this.t + ms, fire }));

  async run<T>(until: Promise<T>): Promise<T> {
    let done = false;
    void until.then(() => (done = true));
    for (let i = 0; i < 1_000_000 && !done; i++) {
      await new Promise((r) => setImmediate(r));
      if (done || this.timers.length === 0) continue;
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers.shift()!;
      this.t = next.at;
      next.fire();
    }
    return until;
  }
}

function ksStatistic(a: number[], b: number[]): number {
  const xs = [...a].sort((x, y) => x - y);
  const ys = [...b].sort((x, y) => x - y);
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < xs.length && j < ys.length) {
    if (xs[i]! <= ys[j]!) i++;
    else j++;
    d = Math.max(d, Math.abs(i / xs.length - j / ys.length));
  }
  return d;
}

test('wrong codes after the right password count twice and are logged as a possible stolen password', async (t) => {
  const s = await server(t, { mfa: { lockout: { max_failures: 4, duration: '15m' } } });
  const eve = await enrollTotp(s.store, 'eve', { password: 'eve-pw' });
  await ask(s, 'eve', `eve-pw${wrongCodeAt(eve, s.clock.now())}`, '198.51.100.5');
  assert.deepEqual((await lockoutView('eve', s)).failures.map((f) => f.count), [2]);
  const line = s.logs.filter({ alert: 'possible_stolen_password', user: 'eve' })[0];
  assert.equal(line?.level, 'warn');
  await ask(s, 'eve', `eve-pw${wrongCodeAt(eve, s.clock.now(), 2)}`, '198.51.100.5');
  assert.equal((await s.store.getUser('eve'))?.lockScope, 'unfamiliar', 'two wrong codes lock at max_failures 4');
});

test('user show lists the live failures and familiar sources from the running server; user unlock clears them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-lockout-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = 'a-long-enough-secret-1';
  const metricsPort = await freeTcpPort();
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    `listen:\n  auth: "127.0.0.1:0"\nclients:\n  - name: nas\n    address: 127.0.0.1\n    secret: "${secret}"\nmfa:\n  reject_delay: 0\n  lockout: { max_failures: 3 }\nusers:\n  ivy: { method: none }\nmetrics:\n  listen: "127.0.0.1:${metricsPort}"\nstore:\n  path: "${join(dir, 'users.db')}"\n`,
  );
  assert.equal((await runCli(config, dir, ['user', 'add', 'ivy', '--password-stdin'], 'ivy-pw\n')).code, 0);
  const server = await startServe(config);
  t.after(() => server.stop());
  const login = (password: string, from: string) => radclient({ 'User-Name': 'Ivy', 'User-Password': password, 'Calling-Station-Id': from }, { port: server.authPort, secret });
  assert.equal((await login('ivy-pw', HOME)).code, 'Access-Accept');
  for (const guess of ['guess1', 'guess2']) assert.equal((await login(guess, '198.51.100.1')).code, 'Access-Reject');

  const show = async () => JSON.parse((await runCli(config, dir, ['user', 'show', 'IVY', '--json'])).stdout) as { lockout: { failures: { source: string | null; count: number }[]; familiar: { source: string }[] } };
  const before = await show();
  assert.deepEqual(before.lockout.failures.map((f) => [f.source, f.count]), [[null, 2]]);
  assert.deepEqual(before.lockout.familiar.map((f) => f.source), [HOME]);
  const text = (await runCli(config, dir, ['user', 'show', 'ivy'])).stdout;
  assert.match(text, /^failures: +2 from strangers \(until /m);
  assert.match(text, new RegExp(`^familiar: +${HOME.replace(/\./g, '\\.')} \\(until `, 'm'));

  const unlock = await runCli(config, dir, ['user', 'unlock', 'ivy']);
  assert.equal(unlock.code, 0, unlock.stderr);
  assert.equal(unlock.stderr, '', 'the counts were cleared in the server');
  const after = await show();
  assert.deepEqual(after.lockout.failures, []);
  assert.deepEqual(after.lockout.familiar.map((f) => f.source), [HOME], 'familiar sources stay: they are the user\'s');
  // The admin endpoint answers this host only, and nothing but its two routes.
  assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/users/ivy/unlock`)).status, 405);
});
