// `radius-mfa store copy --to postgres://...`, run as an admin would (the CLI as a child process), from a
// populated SQLite store into a private PostgreSQL; then a real radclient login against a server on it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashPassword } from '../src/auth/password-hash.js';
import { resolveEncryptionKey } from '../src/store/secret-box.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { Store } from '../src/store/store.js';
import { runCli } from './helpers/cli.js';
import { startPostgres, type PostgresInstance } from './helpers/postgres.js';
import { radclient } from './helpers/radclient.js';
import { codeAt, startTestServer } from './helpers/server.js';

let pg: PostgresInstance;
let dir: string;
before(async () => {
  pg = await startPostgres();
  dir = mkdtempSync(join(tmpdir(), 'radius-mfa-copy-'));
});
after(async () => {
  await pg.close();
  rmSync(dir, { recursive: true, force: true });
});

const aliceSecret = randomBytes(20);

/** A one-box install: config.yaml, a SQLite store with its key file, users of every kind. */
async function populatedInstall(name: string): Promise<{ config: string; cwd: string; key: Buffer }> {
  const cwd = join(dir, name);
  const config = join(cwd, 'config.yaml');
  const storeConfig = { type: 'sqlite' as const, path: join(cwd, 'data', 'users.db') };
  const key = resolveEncryptionKey(storeConfig).key;
  const store = openSqliteStore(storeConfig, key, { now: () => 1_700_000_000_000 });
  await store.addUsers([
    { username: 'alice', method: 'totp', passwordHash: await hashPassword('alice-pw'), totp: { secret: aliceSecret, algorithm: 'SHA1', digits: 6, period: 30 } },
    { username: 'bob', method: 'push', passwordHash: await hashPassword('bob-pw') },
    { username: 'carol', method: null },
  ]);
  await store.setPinHash('bob', '$argon2id$v=19$m=65536,t=3,p=4$pinpinpin$pinhash');
  await store.lockUser('carol', 1_900_000_000_000, 'fraud reported');
  await store.devices.add({ id: 'dev-bob', username: 'bob', name: 'Bob phone', publicKey: Buffer.from([4, 5, 6]), tokenHash: randomBytes(32), pushToken: 'fcm-bob' });
  await store.devices.touch('dev-bob', 1_700_000_123_000);
  await store.devices.addActivation('carol', randomBytes(32), 1_900_000_000_000, true);
  store.close();
  writeFileSync(
    config,
    `listen: { auth: "127.0.0.1:0" }
clients: [{ name: nas, address: 127.0.0.1, secret: "0123456789abcdef0123", require_message_authenticator: true }]
store: { type: sqlite, path: ${storeConfig.path} }
`,
  );
  return { config, cwd, key };
}

async function snapshot(store: Store) {
  return { users: await store.listUsers(), devices: await store.devices.list() };
}

test('store copy moves every table into PostgreSQL in one go, says what it copied, and a login then works against PostgreSQL', async (t) => {
  const { config, cwd, key } = await populatedInstall('full');
  const url = await pg.createDatabase();
  const run = await runCli(config, cwd, ['store', 'copy', '--to', url]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /copied 3 users \(2 with a password hash, 1 with a PIN, 1 locked\), 1 TOTP enrollment, 1 device, 1 activation code from .*users\.db to postgres:\/\/postgres:\*\*\*@127\.0\.0\.1/);
  assert.equal(run.stdout.includes(new URL(url).password), false, 'the password is not printed');

  const source = openSqliteStore({ type: 'sqlite', path: join(cwd, 'data', 'users.db') }, key);
  const copied = await openPostgresStore({ type: 'postgres', path: 'unused', url, pool: 2 }, key);
  t.after(async () => {
    source.close();
    await copied.close();
  });
  assert.deepEqual(await snapshot(copied), await snapshot(source), 'every user and device field, secrets included, reads back the same');
  assert.equal(await copied.devices.consumeActivation(randomBytes(32), 0), undefined);

  // A real NAS (radclient) signs in through a server whose store is the copy.
  const server = await startTestServer({
    secret: 'copy-test-secret-0123456789',
    openStore: async (c, now) => openPostgresStore({ ...c.store, type: 'postgres', url, pool: 2 }, key, { now }),
  });
  t.after(() => server.close());
  const login = (password: string) => radclient({ 'User-Name': 'alice', 'User-Password': password }, { port: server.authPort, secret: server.secret, timeout: 5 });
  const accepted = await login(`alice-pw${codeAt(aliceSecret, server.clock.now())}`);
  assert.equal(accepted.code, 'Access-Accept', server.logs.lines.slice(-5).join('\n'));
  assert.equal((await login('alice-pw000000')).code, 'Access-Reject');
  const locked = await radclient({ 'User-Name': 'carol', 'User-Password': 'x' }, { port: server.authPort, secret: server.secret, timeout: 5 });
  assert.equal(locked.code, 'Access-Reject');
  assert.equal(server.logs.audits('carol').at(-1)?.reason, 'locked', 'the lock came along');
});

test('a target that holds data is refused (nothing written) unless --force, which replaces it in the same transaction', async () => {
  const { config, cwd, key } = await populatedInstall('force');
  const url = await pg.createDatabase();
  const other = await openPostgresStore({ type: 'postgres', path: 'unused', url, pool: 1 }, key);
  await other.addUser({ username: 'dave' });
  await other.close();

  const refused = await runCli(config, cwd, ['store', 'copy', '--to', url]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /already holds 1 row .*nothing copied; add --force/);
  const check = await openPostgresStore({ type: 'postgres', path: 'unused', url, pool: 1 }, key);
  assert.deepEqual((await check.listUsers()).map((u) => u.username), ['dave'], 'untouched');
  await check.close();

  const forced = await runCli(config, cwd, ['store', 'copy', '--to', url, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stdout, /replaced 1 row .*\(--force\)/);
  const after = await openPostgresStore({ type: 'postgres', path: 'unused', url, pool: 1 }, key);
  assert.deepEqual((await after.listUsers()).map((u) => u.username), ['alice', 'bob', 'carol']);
  await after.close();
});

test('a target sealed with another key is refused before anything is copied', async () => {
  const { config, cwd } = await populatedInstall('otherkey');
  const url = await pg.createDatabase();
  const other = await openPostgresStore({ type: 'postgres', path: 'unused', url, pool: 1 }, randomBytes(32));
  await other.close();
  const run = await runCli(config, cwd, ['store', 'copy', '--to', url]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /encryption key does not match/);
});
