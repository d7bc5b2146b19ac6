import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Database } from '../src/store/sqlite-driver.js';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite.js';
import { LAST_SEEN_FLUSH_MS } from '../src/store/sqlite-devices.js';
import { MIGRATIONS, migrate } from '../src/store/migrations.js';
import { type KeyError, openSecret, resolveEncryptionKey, sealSecret } from '../src/store/secret-box.js';
import type { TotpEnrollment } from '../src/mfa/enrollment.js';
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

// The interface itself (users, secrets sealed at rest, wrong keys, locks, devices, activation codes) is
// tested for every backend in store-contract.test.ts; here is what only the SQLite file does.

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
