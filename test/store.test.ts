import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.js';
import { LAST_SEEN_FLUSH_MS } from '../src/store/sqlite-devices.js';
import { MIGRATIONS, migrate } from '../src/store/migrations.js';
import { type KeyError, openSecret, resolveEncryptionKey, sealSecret } from '../src/mfa/secret-box.js';
import { type StoreError, type TotpEnrollment } from '../src/store/store.js';
import type { Config } from '../src/config/schema.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function storeConfig(dir: string, extra: Partial<Config['store']> = {}): Config['store'] {
  return { type: 'sqlite', path: join(dir, 'users.db'), ...extra };
}

const SECRET = Buffer.from('a-very-recognisable-totp-secret!');
const newDevice = (id: string, username: string) => ({ id, username, name: id, publicKey: Buffer.from([1]), tokenHash: randomBytes(32), pushToken: null });
const totp = (secret = SECRET): TotpEnrollment => ({ secret, algorithm: 'SHA256', digits: 8, period: 60 });

function open(t: { after: (fn: () => void) => void }, dir: string, key: Buffer, now?: () => number): SqliteStore {
  const store = openSqliteStore(storeConfig(dir), key, now ? { now } : {});
  t.after(() => store.close());
  return store;
}

test('a fresh file is migrated to the latest schema and re-opening keeps data and version', async (t) => {
  const dir = tempDir(t);
  const key = randomBytes(32);
  const first = openSqliteStore(storeConfig(dir), key);
  await first.addUser({ username: 'alice', method: 'totp' });
  first.close();

  const db = new Database(join(dir, 'users.db'), { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  db.close();

  const again = open(t, dir, key);
  assert.equal((await again.getUser('alice'))?.method, 'totp');
});

test('migrate applies only the missing steps, one transaction each, and refuses a newer database', () => {
  const db = new Database(':memory:');
  const steps = ['CREATE TABLE a (x INTEGER) STRICT;', 'CREATE TABLE b (y INTEGER) STRICT;'];
  assert.deepEqual(migrate(db, steps.slice(0, 1)), { from: 0, to: 1 });
  assert.deepEqual(migrate(db, steps), { from: 1, to: 2 });
  assert.deepEqual(migrate(db, steps), { from: 2, to: 2 });
  assert.throws(() => migrate(db, steps.slice(0, 1)), /newer than this program knows/);

  // A failing step leaves the version and the schema as they were.
  assert.throws(() => migrate(db, [...steps, 'CREATE TABLE c (z INTEGER); THIS IS NOT SQL;']));
  assert.equal(db.pragma('user_version', { simple: true }), 2);
  assert.deepEqual(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'c'").get(), { n: 0 });
  db.close();
});

test('adds, gets, lists and removes users', async (t) => {
  const dir = tempDir(t);
  const store = open(t, dir, randomBytes(32), () => 1_700_000_000_000);
  await store.addUser({ username: 'bob', passwordHash: '$argon2id$v=19$m=65536,p=4,t=3$c2FsdHNhbHRzYWx0$aGFzaGhhc2g' });
  await store.addUser({ username: 'alice', method: 'challenge', totp: totp() });

  const alice = await store.getUser('alice');
  assert.deepEqual(alice, {
    username: 'alice',
    method: 'challenge',
    passwordHash: null,
    totp: totp(),
    lockedUntil: null,
    lockReason: null,
    pinHash: null,
    createdAt: 1_700_000_000_000,
  });
  assert.equal((await store.getUser('bob'))?.totp, null);
  assert.equal(await store.getUser('carol'), undefined);
  assert.deepEqual((await store.listUsers()).map((u) => u.username), ['alice', 'bob']);

  await assert.rejects(store.addUser({ username: 'alice' }), (e: StoreError) => e.code === 'USER_EXISTS');

  await store.setMethod('bob', 'deny');
  await store.setPasswordHash('bob', null);
  await store.setTotp('bob', totp(Buffer.alloc(20, 7)));
  const bob = await store.getUser('bob');
  assert.equal(bob?.method, 'deny');
  assert.equal(bob?.passwordHash, null);
  assert.deepEqual(bob?.totp?.secret, Buffer.alloc(20, 7));
  await store.setTotp('bob', null);
  assert.equal((await store.getUser('bob'))?.totp, null);
  await store.setMethod('bob', null);
  assert.equal((await store.getUser('bob'))?.method, null);

  await assert.rejects(store.setMethod('carol', 'totp'), (e: StoreError) => e.code === 'USER_NOT_FOUND');
  await assert.rejects(store.setTotp('carol', totp()), (e: StoreError) => e.code === 'USER_NOT_FOUND');

  assert.equal(await store.removeUser('alice'), true);
  assert.equal(await store.removeUser('alice'), false);
  assert.equal(await store.getUser('alice'), undefined);
  // ON DELETE CASCADE: the enrollment went with the user, so re-adding starts clean.
  await store.addUser({ username: 'alice' });
  assert.equal((await store.getUser('alice'))?.totp, null);
});

test('TOTP secrets are encrypted at rest: the database files never contain the secret', async (t) => {
  const dir = tempDir(t);
  const store = open(t, dir, randomBytes(32));
  await store.addUser({ username: 'alice', totp: totp() });
  await store.addUsers([{ username: 'bob', totp: totp() }]);
  store.close();
  const files = readdirSync(dir).filter((f) => f.startsWith('users.db'));
  assert.ok(files.includes('users.db'));
  for (const f of files) {
    const bytes = readFileSync(join(dir, f));
    assert.equal(bytes.indexOf(SECRET), -1, `${f} contains the plaintext secret`);
    assert.equal(bytes.indexOf(Buffer.from(SECRET.toString('hex'))), -1);
    assert.equal(bytes.indexOf(Buffer.from(SECRET.toString('base64'))), -1);
  }
});

test('opening with the wrong key fails with KEY_MISMATCH and a message about the key file', async (t) => {
  const dir = tempDir(t);
  const store = openSqliteStore(storeConfig(dir), randomBytes(32));
  await store.addUser({ username: 'alice', totp: totp() });
  store.close();
  assert.throws(
    () => openSqliteStore(storeConfig(dir), randomBytes(32)),
    (e: StoreError) => e.code === 'KEY_MISMATCH' && /key file .*does not match|does not match the database/.test(e.message),
  );
});

test('a secret sealed under another key (or moved to another user) reads as KEY_MISMATCH', async (t) => {
  const dir = tempDir(t);
  const key = randomBytes(32);
  const store = openSqliteStore(storeConfig(dir), key);
  await store.addUser({ username: 'alice', totp: totp() });
  await store.addUser({ username: 'bob', totp: totp() });
  store.close();

  const db = new Database(join(dir, 'users.db'));
  db.prepare('UPDATE totp SET secret_enc = ? WHERE username = ?').run(sealSecret(randomBytes(32), SECRET, 'totp:alice'), 'alice');
  db.prepare("UPDATE totp SET secret_enc = (SELECT secret_enc FROM totp WHERE username = 'alice') WHERE username = 'bob'").run();
  db.close();

  const reopened = open(t, dir, key);
  await assert.rejects(reopened.getUser('alice'), (e: StoreError) => e.code === 'KEY_MISMATCH' && /does not match this database/.test(e.message));
  await assert.rejects(reopened.getUser('bob'), (e: StoreError) => e.code === 'KEY_MISMATCH');
});

test('addUsers writes nothing when one user is a duplicate', async (t) => {
  const dir = tempDir(t);
  const store = open(t, dir, randomBytes(32));
  await store.addUser({ username: 'existing' });
  await assert.rejects(
    store.addUsers([{ username: 'u1', totp: totp() }, { username: 'u2' }, { username: 'existing' }, { username: 'u3' }]),
    (e: StoreError) => e.code === 'USER_EXISTS' && /existing/.test(e.message),
  );
  await assert.rejects(store.addUsers([{ username: 'u1' }, { username: 'u1' }]), (e: StoreError) => e.code === 'USER_EXISTS');
  assert.deepEqual((await store.listUsers()).map((u) => u.username), ['existing']);
});

test('locks and unlocks a user; locking a name without a row creates it locked', async (t) => {
  const dir = tempDir(t);
  const store = open(t, dir, randomBytes(32));
  await store.addUser({ username: 'alice' });
  await store.lockUser('alice', 1_800_000_000_000, 'too many failed codes');
  const locked = await store.getUser('alice');
  assert.equal(locked?.lockedUntil, 1_800_000_000_000);
  assert.equal(locked?.lockReason, 'too many failed codes');
  assert.equal(await store.unlockUser('alice'), true);
  assert.equal(await store.unlockUser('alice'), false);
  const unlocked = await store.getUser('alice');
  assert.equal(unlocked?.lockedUntil, null);
  assert.equal(unlocked?.lockReason, null);
  await assert.rejects(store.unlockUser('nobody'), (e: StoreError) => e.code === 'USER_NOT_FOUND');
  // A directory user has no row until something is stored for them: a lock makes the row, never throws.
  await store.lockUser('ldap-only', 1_800_000_000_000, 'too many failed passwords');
  assert.equal((await store.getUser('ldap-only'))?.lockedUntil, 1_800_000_000_000);
});

test('getUser is fast enough for the per-request path, with and without the record cache', async (t) => {
  const dir = tempDir(t);
  const key = randomBytes(32);
  const store = open(t, dir, key);
  const uncached = openSqliteStore(storeConfig(dir), key, { cacheSize: 0 });
  t.after(() => uncached.close());
  await store.addUsers(Array.from({ length: 10_000 }, (_, i) => ({ username: `user${i}`, totp: totp(randomBytes(20)) })));
  const measure = async (s: SqliteStore, n: number) => {
    for (let i = 0; i < 10_000; i++) await s.getUser(`user${i}`);
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await s.getUser(`user${(i * 7919) % 10_000}`);
    return Number(process.hrtime.bigint() - start) / 1000 / n;
  };
  const cachedUs = await measure(store, 100_000);
  const uncachedUs = await measure(uncached, 20_000);
  t.diagnostic(`getUser over 10,000 users: ${cachedUs.toFixed(2)} µs/op cached, ${uncachedUs.toFixed(2)} µs/op uncached (join + AES-GCM decrypt)`);
  assert.ok(cachedUs < 50, `cached getUser took ${cachedUs} µs/op`);
  assert.ok(uncachedUs < 500, `uncached getUser took ${uncachedUs} µs/op`);
});

test('a cached user reflects changes committed by another process from the next event-loop turn on', async (t) => {
  const dir = tempDir(t);
  const key = randomBytes(32);
  const server = open(t, dir, key);
  const cli = open(t, dir, key);
  // A request arrives in its own I/O callback: the next turn after the other process committed.
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
  await cli.addUser({ username: 'alice', method: 'totp' });
  assert.equal((await server.getUser('alice'))?.method, 'totp');
  await cli.setMethod('alice', 'deny');
  await nextTurn();
  assert.equal((await server.getUser('alice'))?.method, 'deny');
  await cli.lockUser('alice', 5, 'x');
  await nextTurn();
  assert.equal((await server.getUser('alice'))?.lockedUntil, 5);
  await server.unlockUser('alice');
  assert.equal((await server.getUser('alice'))?.lockedUntil, null);
  await cli.removeUser('alice');
  await nextTurn();
  assert.equal(await server.getUser('alice'), undefined);
});

test('device last-seen times are read back at once, written together after LAST_SEEN_FLUSH_MS, and on close', async (t) => {
  const dir = tempDir(t);
  const key = randomBytes(32);
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const server = openSqliteStore(storeConfig(dir), key);
  const cli = open(t, dir, key);
  await server.addUsers([{ username: 'alice' }, { username: 'bob' }]);
  await server.devices.add(newDevice('d-alice', 'alice'));
  await server.devices.add(newDevice('d-bob', 'bob'));
  const seenBy = async (store: SqliteStore) => Object.fromEntries((await store.devices.list()).map((d) => [d.id, d.lastSeenAt]));

  await server.devices.touch('d-alice', 1000);
  await server.devices.touch('d-bob', 2000);
  await server.devices.touch('d-alice', 3000);
  assert.deepEqual(await seenBy(server), { 'd-alice': 3000, 'd-bob': 2000 }, 'this process sees them at once');
  assert.deepEqual(await seenBy(cli), { 'd-alice': null, 'd-bob': null }, 'not written yet');
  t.mock.timers.tick(LAST_SEEN_FLUSH_MS);
  assert.deepEqual(await seenBy(cli), { 'd-alice': 3000, 'd-bob': 2000 }, 'written together, the latest time per device');

  await server.devices.touch('d-bob', 4000);
  server.close();
  assert.deepEqual(await seenBy(cli), { 'd-alice': 3000, 'd-bob': 4000 }, 'close writes what was waiting');
});

test('a last-seen write does not wait for a write lock another process holds; it goes in after the lock is released', async (t) => {
  const dir = tempDir(t);
  const key = randomBytes(32);
  t.mock.timers.enable({ apis: ['setTimeout'] });
  // A long busy timeout: waiting for the lock would show as a flush that takes 30 s.
  const server = openSqliteStore(storeConfig(dir), key, { busyTimeoutMs: 30_000 });
  t.after(() => server.close());
  await server.addUsers([{ username: 'alice' }]);
  await server.devices.add(newDevice('d-alice', 'alice'));
  const importer = new Database(join(dir, 'users.db'));
  t.after(() => importer.close());
  importer.exec('BEGIN IMMEDIATE'); // as a long `user import` in another process would

  await server.devices.touch('d-alice', 1000);
  const started = performance.now();
  t.mock.timers.tick(LAST_SEEN_FLUSH_MS);
  assert.ok(performance.now() - started < 10_000, 'the flush gave up at once instead of waiting for the lock');
  assert.equal((await server.devices.list())[0]!.lastSeenAt, 1000, 'kept for the next try, and still read back');

  importer.exec('COMMIT');
  t.mock.timers.tick(LAST_SEEN_FLUSH_MS);
  assert.equal(importer.prepare('SELECT last_seen_at FROM devices').pluck().get(), 1000, 'written on the next try');
});

test('the key file is created with a random key, mode 0600, and reused afterwards', (t) => {
  const dir = tempDir(t);
  const cfg = storeConfig(join(dir, 'nested', 'data'));
  const first = resolveEncryptionKey(cfg);
  assert.equal(first.created, true);
  assert.equal(first.source, join(dir, 'nested', 'data', 'users.db.key'));
  assert.equal(statSync(first.source).mode & 0o777, 0o600);
  assert.equal(first.key.length, 32);
  const second = resolveEncryptionKey(cfg);
  assert.equal(second.created, false);
  assert.deepEqual(second.key, first.key);
});

test('no new key file is made for an existing database whose key file went missing', async (t) => {
  const dir = tempDir(t);
  const cfg = storeConfig(dir);
  const { key, source } = resolveEncryptionKey(cfg);
  const store = openSqliteStore(cfg, key);
  await store.addUser({ username: 'alice', totp: totp() });
  store.close();
  rmSync(source);
  assert.throws(() => resolveEncryptionKey(cfg), (e: KeyError) => e.code === 'KEY_FILE_MISSING' && e.message.includes('restore the key file'));
  assert.equal(readdirSync(dir).includes('users.db.key'), false);
});

test('a key file readable by group or others is refused with the chmod fix', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'k.key');
  writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, { mode: 0o644 });
  chmodSync(path, 0o644);
  assert.throws(
    () => resolveEncryptionKey(storeConfig(dir, { key_file: path })),
    (e: KeyError) => e.code === 'KEY_FILE_MODE' && e.message.includes(`chmod 600 ${path}`),
  );
  chmodSync(path, 0o600);
  assert.equal(resolveEncryptionKey(storeConfig(dir, { key_file: path })).key.length, 32);
});

test('relative key_file and store.path resolve against the working directory', (t) => {
  const dir = tempDir(t);
  const cfg: Config['store'] = { type: 'sqlite', path: 'data/users.db', key_file: 'keys/store.key' };
  assert.equal(resolveEncryptionKey(cfg, dir).source, join(dir, 'keys', 'store.key'));
  assert.equal(resolveEncryptionKey({ ...cfg, key_file: undefined }, dir).source, join(dir, 'data', 'users.db.key'));
});

test('a key file with garbage is refused; encryption_key must be 64 hex chars and names the field', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'bad.key');
  writeFileSync(path, 'not a key\n', { mode: 0o600 });
  assert.throws(() => resolveEncryptionKey(storeConfig(dir, { key_file: path })), (e: KeyError) => e.code === 'KEY_FILE_INVALID');
  assert.throws(
    () => resolveEncryptionKey(storeConfig(dir, { encryption_key: 'abc123' })),
    (e: KeyError) => e.code === 'BAD_KEY' && e.message.startsWith('store.encryption_key'),
  );
  const hex = randomBytes(32).toString('hex');
  const r = resolveEncryptionKey(storeConfig(dir, { encryption_key: hex }));
  assert.deepEqual(r, { key: Buffer.from(hex, 'hex'), source: 'store.encryption_key', created: false });
});

test('sealed secrets use a fresh IV, round-trip, and reject a wrong context or a truncated box', () => {
  const key = randomBytes(32);
  const a = sealSecret(key, SECRET, 'totp:alice');
  const b = sealSecret(key, SECRET, 'totp:alice');
  assert.notDeepEqual(a, b);
  assert.equal(a[0], 1);
  assert.deepEqual(openSecret(key, a, 'totp:alice'), { ok: true, plaintext: SECRET });
  assert.deepEqual(openSecret(key, a, 'totp:bob'), { ok: false, reason: 'auth' });
  assert.deepEqual(openSecret(key, a.subarray(0, 10), 'totp:alice'), { ok: false, reason: 'format' });
});
