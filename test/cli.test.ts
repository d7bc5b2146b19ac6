import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveEncryptionKey } from '../src/store/secret-box.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { encodeBase32 } from '../src/mfa/totp-secret.js';
import { verifyPassword } from '../src/auth/password-hash.js';
import { runCli, type CliRun } from './helpers/cli.js';

interface Env {
  dir: string;
  config: string;
  storeConfig: { type: 'sqlite'; path: string };
  cli: (args: string[], input?: string) => Promise<CliRun>;
}

function setup(t: { after: (fn: () => void) => void }): Env {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'listen:',
      '  auth: "127.0.0.1:0"',
      'clients:',
      '  - name: test-vpn',
      '    address: 127.0.0.1',
      '    secret: "a-long-test-shared-secret"',
      'mfa:',
      '  totp:',
      '    issuer: "ACME VPN"',
      'store:',
      '  path: ./data/users.db',
      '',
    ].join('\n'),
  );
  // cwd is the temp dir: the relative store.path must land there, never in the repo's data/.
  const cli = (args: string[], input?: string) => runCli(config, dir, args, input);
  return { dir, config, storeConfig: { type: 'sqlite', path: join(dir, 'data', 'users.db') }, cli };
}

/** Opens the CLI's store in-process, with the key file the CLI created. */
function openStore(env: Env) {
  return openSqliteStore(env.storeConfig, resolveEncryptionKey(env.storeConfig).key);
}

const json = (r: CliRun) => JSON.parse(r.stdout) as Record<string, unknown>;

test('user add reads the password from stdin, and user show reports the user without secrets', async (t) => {
  const env = setup(t);
  const add = await env.cli(['user', 'add', 'alice', '--password-stdin'], 's3cret pass\n');
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /added user alice/);
  assert.match(add.stderr, /created the store key file .*users\.db\.key/);
  assert.equal(statSync(join(env.dir, 'data', 'users.db.key')).mode & 0o777, 0o600);

  const show = await env.cli(['user', 'show', 'alice', '--json']);
  assert.equal(show.code, 0, show.stderr);
  assert.deepEqual({ ...json(show), created_at: undefined }, {
    username: 'alice',
    method: 'totp',
    method_source: 'default',
    has_password: true,
    totp: null,
    locked_until: null,
    lock_scope: null,
    lock_reason: null,
    created_at: undefined,
    lockout: { unknown: 'the counts live in the running server (state.type memory), which is asked on metrics.listen: set metrics.listen to see them' },
  });
  const text = await env.cli(['user', 'show', 'alice']);
  assert.match(text.stdout, /method: +totp \(mfa\.default_method\)/);
  assert.match(text.stdout, /^failures: +not known here: the counts live in the running server/m);

  const store = openStore(env);
  const hash = (await store.getUser('alice'))!.passwordHash!;
  store.close();
  assert.match(hash, /^\$argon2id\$/);
  // Exactly one trailing newline was stripped, nothing else.
  assert.equal(await verifyPassword(hash, 's3cret pass'), true);

  const noPassword = await env.cli(['user', 'add', 'svc-backup', '--method', 'none']);
  assert.equal(noPassword.code, 0, noPassword.stderr);
  const list = await env.cli(['user', 'list', '--json']);
  assert.deepEqual(
    (JSON.parse(list.stdout) as { username: string; method: string; has_password: boolean }[]).map((u) => [u.username, u.method, u.has_password]),
    [
      ['alice', 'totp', true],
      ['svc-backup', 'none', false],
    ],
  );
  const table = await env.cli(['user', 'list']);
  assert.match(table.stdout, /^USERNAME +METHOD/);

  const dup = await env.cli(['user', 'add', 'alice']);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /^radius-mfa: user alice already exists/);
  assert.doesNotMatch(dup.stderr, /\n\s+at /, 'no stack trace for an expected error');
});

test('user import takes 10,000 rows in one go', async (t) => {
  const env = setup(t);
  const hash = '"$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$iWh06vD8Fy27wf9npn6FXWiCX4K6pW6Ue1Bnzz07Z8A"';
  const secrets = Array.from({ length: 10_000 }, () => randomBytes(20));
  const rows = secrets.map((s, i) => `user${i},${i % 3 === 0 ? 'challenge' : ''},${encodeBase32(s)},${i % 2 === 0 ? hash : ''}`);
  const file = join(env.dir, 'users.csv');
  writeFileSync(file, `username,method,totp_secret,password_hash\n${rows.join('\n')}\n`);

  const r = await env.cli(['user', 'import', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /imported 10000 users \(10000 with TOTP, 5000 with a password hash\)/);
  t.diagnostic(`user import of 10,000 rows: ${Math.round(r.ms)} ms wall clock for the whole command (node + tsx startup included)`);
  assert.ok(r.ms < 20_000);

  const store = openStore(env);
  t.after(() => store.close());
  const u = await store.getUser('user9999');
  assert.deepEqual(u?.totp, { secret: secrets[9999], algorithm: 'SHA1', digits: 6, period: 30 });
  assert.equal((await store.getUser('user3'))?.method, 'challenge');
  assert.equal((await store.listUsers()).length, 10_000);
});

test('a bad import file reports FILE:LINE: field: problem for every bad row and imports nothing', async (t) => {
  const env = setup(t);
  const file = join(env.dir, 'bad.csv');
  writeFileSync(
    file,
    [
      'username,method,totp_secret,password_hash',
      `good1,,${encodeBase32(randomBytes(20))},`,
      'bad-method,sms,,',
      `good2,totp,${encodeBase32(randomBytes(20))},`,
      'bad-secret,,ABC!DEF,',
      'bad-hash,,,"$2b$10$abcdefghijklmnopqrstuv"',
      'good1,,,',
      '',
    ].join('\n'),
  );
  const r = await env.cli(['user', 'import', file]);
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('radius-mfa: warning'));
  assert.deepEqual(
    lines.slice(0, 4).map((l) => l.split(': ').slice(0, 2).join(': ')),
    [`${file}:3: method`, `${file}:5: totp_secret`, `${file}:6: password_hash`, `${file}:7: username`],
  );
  assert.match(lines.at(-1)!, /nothing imported/);
  const list = await env.cli(['user', 'list', '--json']);
  assert.deepEqual(JSON.parse(list.stdout), []);
});

test('totp enroll prints the otpauth URI and a QR code, writes a PNG, and refuses to overwrite without --force', async (t) => {
  const env = setup(t);
  await env.cli(['user', 'add', 'alice']);
  const png = join(env.dir, 'alice.png');
  const r = await env.cli(['totp', 'enroll', 'alice', '--png', png]);
  assert.equal(r.code, 0, r.stderr);
  const uri = /^otpauth:\/\/totp\/ACME%20VPN:alice\?secret=([A-Z2-7]+)&issuer=ACME%20VPN$/m.exec(r.stdout);
  assert.ok(uri, r.stdout);
  assert.match(r.stdout, /[▀▄█]/, 'a terminal QR code');
  assert.deepEqual(readFileSync(png).subarray(0, 8), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  assert.equal(statSync(png).mode & 0o777, 0o600);

  const store = openStore(env);
  const stored = (await store.getUser('alice'))!.totp!;
  store.close();
  assert.equal(encodeBase32(stored.secret), uri[1]);
  assert.deepEqual({ ...stored, secret: undefined }, { secret: undefined, algorithm: 'SHA1', digits: 6, period: 30 });

  const again = await env.cli(['totp', 'enroll', 'alice']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already has a TOTP enrollment; add --force/);
  const forced = await env.cli(['totp', 'enroll', 'alice', '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(/secret=([A-Z2-7]+)/.exec(forced.stdout)?.[1], uri[1]);

  const nobody = await env.cli(['totp', 'enroll', 'nobody']);
  assert.equal(nobody.code, 1);
  assert.match(nobody.stderr, /no user nobody; add it first: radius-mfa user add nobody/);
});

test('totp import stores the given secret and parameters; a bad secret is a usage error', async (t) => {
  const env = setup(t);
  await env.cli(['user', 'add', 'bob']);
  const secret = randomBytes(32);
  const r = await env.cli(['totp', 'import', 'bob', '--secret', encodeBase32(secret).toLowerCase(), '--digits', '8', '--period', '60', '--algorithm', 'SHA256']);
  assert.equal(r.code, 0, r.stderr);
  const show = json(await env.cli(['user', 'show', 'bob', '--json']));
  assert.deepEqual(show.totp, { algorithm: 'SHA256', digits: 8, period: 60 });
  assert.doesNotMatch(JSON.stringify(show), new RegExp(encodeBase32(secret), 'i'));

  const store = openStore(env);
  assert.deepEqual((await store.getUser('bob'))!.totp!.secret, secret);
  store.close();

  const bad = await env.cli(['totp', 'import', 'bob', '--secret', 'NOT*BASE32', '--force']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--secret: "\*" is not a base32 character/);
  const legacy = await env.cli(['totp', 'import', 'bob', '--secret', 'JBSWY3DPEHPK3PXP', '--force']);
  assert.equal(legacy.code, 0, legacy.stderr);
  assert.match(legacy.stderr, /legacy 10-byte secret accepted/);
});

test('set-method sets and resets the method; unlock ends a lockout; remove deletes', async (t) => {
  const env = setup(t);
  await env.cli(['user', 'add', 'carol']);
  assert.equal((await env.cli(['user', 'set-method', 'carol', 'deny'])).code, 0);
  let show = json(await env.cli(['user', 'show', 'carol', '--json']));
  assert.deepEqual([show.method, show.method_source], ['deny', 'user']);
  assert.equal((await env.cli(['user', 'set-method', 'carol', 'default'])).code, 0);
  show = json(await env.cli(['user', 'show', 'carol', '--json']));
  assert.deepEqual([show.method, show.method_source], ['totp', 'default']);

  const usage = await env.cli(['user', 'set-method', 'carol', 'sms']);
  assert.equal(usage.code, 2);
  const missing = await env.cli(['user', 'set-method', 'nobody', 'totp']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no user nobody/);

  const store = openStore(env);
  await store.lockUser('carol', Date.now() + 3_600_000, 'too many failed codes');
  store.close();
  show = json(await env.cli(['user', 'show', 'carol', '--json']));
  assert.equal(show.lock_reason, 'too many failed codes');
  const unlock = await env.cli(['user', 'unlock', 'carol']);
  assert.equal(unlock.code, 0, unlock.stderr);
  assert.match(unlock.stdout, /unlocked carol/);
  show = json(await env.cli(['user', 'show', 'carol', '--json']));
  assert.equal(show.locked_until, null);
  assert.match((await env.cli(['user', 'unlock', 'carol'])).stdout, /carol was not locked/);

  assert.equal((await env.cli(['user', 'remove', 'carol'])).code, 0);
  const gone = await env.cli(['user', 'remove', 'carol']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no user carol/);
});

test('check-config prints OK for a good file, and line:column problems with exit 1 for a bad one', async (t) => {
  const env = setup(t);
  const ok = await env.cli(['check-config']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^OK /);

  const bad = join(env.dir, 'bad.yaml');
  writeFileSync(bad, 'listen:\n  auth: "nope"\nclients:\n  - name: vpn\n    address: 10.0.0.300\n    secret: x\n');
  const r = await env.cli(['--config', bad, 'check-config']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${bad.replace(/[.]/g, '\\.')}:2:\\d+ listen\\.auth: `));
  assert.match(r.stderr, /:5:\d+ clients\[0\]\.address/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);

  const users = await env.cli(['--config', bad, 'user', 'list']);
  assert.equal(users.code, 1);
});

test('web-push keys prints a mobile_app.web_push section that check-config accepts; each run a new pair', async (t) => {
  const env = setup(t);
  const first = await env.cli(['web-push', 'keys', '--subject', 'mailto:vpn-admins@example.com']);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^mobile_app:\n {2}web_push:\n {4}vapid_public_key: "B[\w-]{86}"\n {4}vapid_private_key: "[\w-]{43}"\n {4}subject: "mailto:vpn-admins@example.com"$/m);
  writeFileSync(env.config, `${readFileSync(env.config, 'utf8')}${first.stdout}`);
  const check = await env.cli(['check-config']);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout, /^OK /);

  const second = await env.cli(['web-push', 'keys']);
  assert.notEqual(/vapid_private_key: "(.*)"/.exec(second.stdout)![1], /vapid_private_key: "(.*)"/.exec(first.stdout)![1]);
  assert.equal((await env.cli(['web-push', 'keys', '--subject', 'vpn-admins@example.com'])).code, 2);
});

test('usage errors exit 2 and --help exits 0', async (t) => {
  const env = setup(t);
  assert.equal((await env.cli(['user', 'add'])).code, 2);
  assert.equal((await env.cli(['frobnicate'])).code, 2);
  assert.equal((await env.cli(['user', 'add', 'x', '--method', 'sms'])).code, 2);
  const help = await env.cli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /check-config/);
});
