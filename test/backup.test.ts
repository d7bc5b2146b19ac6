// backup and restore: an online copy taken during traffic, sealed with its key under a passphrase;
// restore refuses while a server has the store open, and the restored store serves logins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveEncryptionKey } from '../src/store/secret-box.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { runCli } from './helpers/cli.js';
import { radclient } from './helpers/radclient.js';
import { startServe } from './helpers/serve-process.js';
import { enrollTotp, type EnrolledUser } from './helpers/server.js';

const PASSPHRASE = 'correct horse battery staple';

function setup(t: { after(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-backup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = `s-${randomBytes(6).toString('hex')}`;
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `listen:\n  auth: "127.0.0.1:0"\nclients:\n  - name: nas\n    address: 127.0.0.1\n    secret: "${secret}"\nmfa:\n  reject_delay: 0\nstore:\n  path: "${join(dir, 'data', 'users.db')}"\n`);
  return { dir, secret, config, storeConfig: { type: 'sqlite' as const, path: join(dir, 'data', 'users.db') } };
}

test('backup during traffic, restore refused while serving, restore after stop, and the restored store logs in', async (t) => {
  const { dir, secret, config, storeConfig } = setup(t);
  const key = resolveEncryptionKey(storeConfig).key; // creates data/users.db.key, as the first start would
  const store = openSqliteStore(storeConfig, key);
  const users: EnrolledUser[] = [];
  for (const name of ['alice', 'bob']) users.push(await enrollTotp(store, name, { password: `pw-${name}` }));
  store.close();

  const server = await startServe(config);
  t.after(() => server.stop());
  const login = (u: EnrolledUser, port = server.authPort) =>
    radclient({ 'User-Name': u.username, 'User-Password': `${u.password}${u.codeAt(Date.now())}` }, { port, secret, timeout: 5 });

  // Traffic: logins (each writes the used TOTP step and may touch the lockout row) while the backup runs.
  let stop = false;
  let answered = 0;
  const traffic = (async () => {
    while (!stop) {
      const r = await radclient({ 'User-Name': 'bob', 'User-Password': 'wrong' }, { port: server.authPort, secret, timeout: 5 });
      if (r.code !== 'timeout') answered++;
    }
  })();
  const file = join(dir, 'store.backup');
  const backup = await runCli(config, dir, ['backup', file], `${PASSPHRASE}\n`);
  stop = true;
  await traffic;
  assert.equal(backup.code, 0, backup.stderr);
  assert.ok(answered > 0, 'requests were answered during the backup');
  assert.match(backup.stdout, /wrote .*store\.backup: 2 users, \d+ bytes, store key included \(encrypted with the passphrase\)/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.ok(!readFileSync(file).includes(key.toString('hex')), 'the key is not in the file in the clear');

  // After the backup: a user the restore must take away again.
  const carol = await runCli(config, dir, ['user', 'add', 'carol', '--method', 'none']);
  assert.equal(carol.code, 0, carol.stderr);

  const refused = await runCli(config, dir, ['restore', file], `${PASSPHRASE}\n`);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /users\.db is open in another process \(a running server, or another radius-mfa command\): stop it first \(systemctl stop radius-mfa\), then restore/);
  assert.equal((await login(users[0]!)).code, 'Access-Accept', 'the refused restore left the running store alone');

  assert.equal(await server.stop(), 0);
  const wrong = await runCli(config, dir, ['restore', file], 'not the passphrase\n');
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /cannot decrypt .*store\.backup: wrong passphrase, or the file was changed/);
  // Lose the key file and the database: the backup alone brings both back.
  rmSync(join(dir, 'data'), { recursive: true });
  const restored = await runCli(config, dir, ['restore', file], `${PASSPHRASE}\n`);
  assert.equal(restored.code, 0, restored.stderr);
  assert.match(restored.stdout, /restored .*users\.db from .*store\.backup \(taken .*, 2 users\)/);
  assert.equal(statSync(join(dir, 'data', 'users.db.key')).mode & 0o777, 0o600);

  const again = await startServe(config);
  t.after(() => again.stop());
  for (const u of users) assert.equal((await login(u, again.authPort)).code, 'Access-Accept', u.username);
  assert.match((await runCli(config, dir, ['user', 'list'])).stdout, /alice[\s\S]*bob/);
  assert.equal((await runCli(config, dir, ['user', 'show', 'carol'])).code, 1, 'carol was added after the backup');
  assert.equal(await again.stop(), 0);

  // Restoring over an existing store keeps what it replaces.
  const over = await runCli(config, dir, ['restore', file], `${PASSPHRASE}\n`);
  assert.equal(over.code, 0, over.stderr);
  assert.match(over.stdout, /kept the replaced file as .*users\.db\.before-restore-/);
  assert.match(over.stdout, /kept the replaced file as .*users\.db\.key\.before-restore-/);
});

test('backup refuses a short passphrase, an existing file and a missing store, each with the fix', async (t) => {
  const { dir, config, storeConfig } = setup(t);
  const missing = await runCli(config, dir, ['backup', join(dir, 'b1')], `${PASSPHRASE}\n`);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /users\.db does not exist: check store\.path/);
  const store = openSqliteStore(storeConfig, resolveEncryptionKey(storeConfig).key);
  store.close();
  const short = await runCli(config, dir, ['backup', join(dir, 'b2')], 'short\n');
  assert.equal(short.code, 1);
  assert.match(short.stderr, /the passphrase must have at least 12 characters/);
  writeFileSync(join(dir, 'b3'), 'x');
  const exists = await runCli(config, dir, ['backup', join(dir, 'b3')], `${PASSPHRASE}\n`);
  assert.equal(exists.code, 1);
  assert.match(exists.stderr, /b3 exists: give a new file name \(a backup never overwrites a file\)/);
  const notBackup = await runCli(config, dir, ['restore', join(dir, 'b3')], `${PASSPHRASE}\n`);
  assert.equal(notBackup.code, 1);
  assert.match(notBackup.stderr, /b3 is not a radius-mfa backup/);
  assert.ok(!existsSync(join(dir, 'b2')));
});
