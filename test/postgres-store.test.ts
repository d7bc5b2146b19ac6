// What only the PostgreSQL store does (the interface is in store-contract.test.ts): nodes starting at
// once, a key that cannot open the stored secrets, the config it needs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../src/config/schema.js';
import { type KeyError, keyFingerprint, resolveEncryptionKey, sealSecret } from '../src/store/secret-box.js';
import { MigrationError } from '../src/store/migrations.js';
import { describePostgresUrl, openPostgresStore } from '../src/store/postgres.js';
import { PG_MIGRATIONS } from '../src/store/postgres-migrations.js';
import { type StoreError } from '../src/store/store.js';
import { sql, startPostgres, type PostgresInstance } from './helpers/postgres.js';
import { until } from './helpers/until.js';

let server: PostgresInstance;
before(async () => {
  server = await startPostgres();
});
after(() => server.close());

const storeConfig = (url: string) => ({ type: 'postgres' as const, path: 'unused', url, pool: 2 });


test('nodes starting at once against a fresh database migrate it once and agree on the key', async () => {
  const url = await server.createDatabase();
  const key = randomBytes(32);
  const stores = await Promise.all(Array.from({ length: 4 }, () => openPostgresStore(storeConfig(url), key)));
  await stores[0]!.addUser({ username: 'alice', totp: { secret: randomBytes(20), algorithm: 'SHA1', digits: 6, period: 30 } });
  for (const s of stores) assert.equal((await s.getUser('alice'))?.username, 'alice');
  await Promise.all(stores.map((s) => s.close()));
  const versions = await sql<{ version: number }>(url, 'SELECT version FROM schema_version ORDER BY version');
  assert.deepEqual(versions.map((v) => v.version), PG_MIGRATIONS.map((_, i) => i + 1), 'each step applied exactly once');
});

test('two nodes with different keys starting at once: one owns the store, the other is refused', async () => {
  const url = await server.createDatabase();
  const results = await Promise.allSettled([openPostgresStore(storeConfig(url), randomBytes(32)), openPostgresStore(storeConfig(url), randomBytes(32))]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  assert.equal((refused.reason as StoreError).code, 'KEY_MISMATCH');
  for (const r of results) if (r.status === 'fulfilled') await r.value.close();
});

test('a store whose secrets were sealed under another key is refused at start, even when its fingerprint matches', async () => {
  const url = await server.createDatabase();
  const key = randomBytes(32);
  const store = await openPostgresStore(storeConfig(url), key);
  await store.addUser({ username: 'alice', totp: { secret: randomBytes(20), algorithm: 'SHA1', digits: 6, period: 30 } });
  await store.close();
  // As a copy made with the wrong key file would look: meta says one key, the rows another.
  await sql(url, "UPDATE totp SET secret_enc = $1 WHERE username = 'alice'", [sealSecret(randomBytes(32), randomBytes(20), 'totp:alice')]);
  assert.equal((await sql<{ value: string }>(url, "SELECT value FROM meta WHERE key = 'key_check'"))[0]!.value, keyFingerprint(key));
  await assert.rejects(openPostgresStore(storeConfig(url), key), (e: StoreError) => e.code === 'KEY_MISMATCH' && /every node must use the same key/.test(e.message));
});

test('a database migrated by a newer version is refused with the upgrade hint', async () => {
  const url = await server.createDatabase();
  const store = await openPostgresStore(storeConfig(url), randomBytes(32));
  await store.close();
  await sql(url, 'INSERT INTO schema_version (version, applied_at) VALUES ($1, 0)', [PG_MIGRATIONS.length + 1]);
  await assert.rejects(openPostgresStore(storeConfig(url), randomBytes(32)), (e: Error) => e instanceof MigrationError && /newer than this program knows/.test(e.message));
});

test('an unreachable server fails the open within the connect timeout, and the message hides the password', async () => {
  const started = Date.now();
  await assert.rejects(openPostgresStore(storeConfig('postgres://u:hunter2@127.0.0.1:1/x'), randomBytes(32), { connectTimeoutMs: 500 }));
  assert.ok(Date.now() - started < 5000);
  assert.equal(describePostgresUrl('postgres://u:hunter2@db.example.com:5432/x'), 'postgres://u:***@db.example.com:5432/x');
});

test('store.type postgres needs a url and a shared key; a key file is never created for it', () => {
  const base = { listen: { auth: '127.0.0.1:0' }, clients: [{ name: 'n', address: '127.0.0.1', secret: 'x'.repeat(16) }] };
  const r = configSchema.safeParse({ ...base, store: { type: 'postgres' } });
  assert.equal(r.success, false);
  const paths = r.error!.issues.map((i) => i.path.join('.'));
  assert.ok(paths.includes('store.url') && paths.includes('store.encryption_key'), paths.join(', '));
  const ok = configSchema.parse({ ...base, store: { type: 'postgres', url: 'postgres://db/x', encryption_key: 'ab'.repeat(32) } });
  assert.equal(ok.store.type, 'postgres');
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-pgkey-'));
  try {
    assert.throws(
      () => resolveEncryptionKey({ type: 'postgres', path: 'unused', url: 'postgres://db/x', key_file: join(dir, 'store.key') }),
      (e: KeyError) => e.code === 'KEY_FILE_MISSING' && /every node must use the same key/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The record cache (postgres-user-cache.ts): each node keeps decrypted records and drops one when
// PostgreSQL notifies a change, made by whoever. A node never serves a record it may have missed a change to.
const TOTP = { secret: Buffer.alloc(20, 3), algorithm: 'SHA1' as const, digits: 6 as const, period: 30 };

test('a node sees its own writes at once and writes made through another node, psql or a TRUNCATE within a bounded wait', async (t) => {
  const url = await server.createDatabase();
  const key = randomBytes(32);
  const a = await openPostgresStore(storeConfig(url), key);
  const b = await openPostgresStore(storeConfig(url), key);
  t.after(() => Promise.all([a.close(), b.close()]));
  assert.equal(a.cache?.listening, true);
  await a.addUser({ username: 'alice', totp: TOTP });
  await a.cache!.check(); // the insert's own notification heard: a read from now on is kept
  const first = await a.getUser('alice');
  assert.equal(await a.getUser('alice'), first, 'served from the cache: the same frozen record');
  assert.ok(first?.totp);

  await a.setMethod('alice', 'challenge');
  assert.equal((await a.getUser('alice'))?.method, 'challenge', "this node's own write, read back without waiting");

  // A lock written by node B: node A's next reads return it once the notification has come.
  await b.lockUser('alice', 1_900_000_000_000, 'fraud reported');
  const locked = await until(async () => ((await a.getUser('alice'))?.lockedUntil === 1_900_000_000_000 ? true : undefined), "B's lock at A", 5000);
  assert.ok(locked);
  assert.equal((await a.getUser('alice'))?.lockReason, 'fraud reported');

  // A write by hand (psql), not through any store: the trigger notifies it too. totp is read by getUser as well.
  await sql(url, "UPDATE totp SET digits = 8 WHERE username = 'alice'");
  await until(async () => ((await a.getUser('alice'))?.totp?.digits === 8 ? true : undefined), "psql's change of the totp row at A", 5000);
  await sql(url, 'TRUNCATE users CASCADE');
  await until(async () => ((await a.getUser('alice')) === undefined ? true : undefined), 'the TRUNCATE at A', 5000);
});

test('a row read before a change is returned but never cached after the change was heard', async (t) => {
  const url = await server.createDatabase();
  const key = randomBytes(32);
  const a = await openPostgresStore(storeConfig(url), key);
  const b = await openPostgresStore(storeConfig(url), key, { cacheSize: 0 });
  t.after(() => Promise.all([a.close(), b.close()]));
  await a.addUsers([{ username: 'alice' }, { username: 'bob' }]);
  await a.cache!.check();
  const query = a.pool.query.bind(a.pool) as (...args: unknown[]) => Promise<unknown>;
  // Each read of A's comes back from PostgreSQL only after a write has landed and A has heard of it.
  const raceEachRead = (write: () => Promise<unknown>) => {
    (a.pool as { query: unknown }).query = async (...args: unknown[]) => {
      const rows = await query(...args);
      (a.pool as { query: unknown }).query = query;
      await write();
      await a.cache!.check();
      return rows;
    };
  };

  raceEachRead(() => b.lockUser('alice', 1_900_000_000_000, 'fraud reported'));
  assert.equal((await a.getUser('alice'))?.lockedUntil, null, 'read before the lock of node B');
  assert.equal((await a.getUser('alice'))?.lockedUntil, 1_900_000_000_000, 'the row read before the lock was not kept');

  raceEachRead(() => a.setMethod('bob', 'deny'));
  assert.equal((await a.getUser('bob'))?.method, null, "read before this node's own write");
  assert.equal((await a.getUser('bob'))?.method, 'deny', 'the row read before the write was not kept');
});

test('while PostgreSQL is down and until LISTEN is back nothing is served from the cache; after it is back, changes are heard again', async (t) => {
  const url = await server.createDatabase();
  const key = randomBytes(32);
  // A reconnects its LISTEN connection only after a minute: B writes while A cannot hear it.
  const a = await openPostgresStore(storeConfig(url), key, { listenRetryMs: 60_000 });
  const c = await openPostgresStore(storeConfig(url), key, { listenRetryMs: 20 });
  const b = await openPostgresStore(storeConfig(url), key, { cacheSize: 0 });
  t.after(() => Promise.all([a.close(), b.close(), c.close()]));
  await b.addUser({ username: 'alice', totp: TOTP });
  for (const node of [a, c]) {
    await node.cache!.check(); // B's insert heard: a read from now on is kept
    const cached = await node.getUser('alice');
    assert.equal(await node.getUser('alice'), cached, 'cached before the outage');
  }

  await server.stop();
  await until(() => (a.cache!.listening || c.cache!.listening ? undefined : true), 'both nodes to notice the lost LISTEN connection', 5000);
  await assert.rejects(async () => a.getUser('alice'), 'PostgreSQL is down: no record from the cache');
  await server.start();
  await until(async () => (await b.lockUser('alice', 1_900_000_000_000, 'locked during the outage').then(() => true, () => undefined)), 'B to write again', 10_000);

  assert.equal(a.cache!.listening, false, 'A is not listening yet');
  assert.equal((await a.getUser('alice'))?.lockedUntil, 1_900_000_000_000, "A reads B's write made while A heard nothing");
  assert.notEqual(await a.getUser('alice'), await a.getUser('alice'), 'and keeps nothing until it listens again');

  await until(() => (c.cache!.listening ? true : undefined), 'C to listen again', 10_000);
  assert.equal((await c.getUser('alice'))?.lockedUntil, 1_900_000_000_000);
  await b.unlockUser('alice');
  await until(async () => ((await c.getUser('alice'))?.lockedUntil === null ? true : undefined), "B's unlock at C, after the restart", 5000);
});

test('a failed store query stops the cache at once: a silently cut connection is not waited out', async (t) => {
  const url = await server.createDatabase();
  const key = randomBytes(32);
  const a = await openPostgresStore(storeConfig(url), key, { listenRetryMs: 60_000 });
  t.after(() => a.close());
  await a.addUser({ username: 'alice', totp: TOTP });
  await a.cache!.check();
  const cached = await a.getUser('alice');
  assert.equal(await a.getUser('alice'), cached, 'cached');
  // The pool's next query fails as on a cut network, while the LISTEN connection still looks alive.
  const query = a.pool.query.bind(a.pool) as (...args: unknown[]) => Promise<unknown>;
  (a.pool as { query: unknown }).query = async () => {
    (a.pool as { query: unknown }).query = query;
    throw new Error('Connection terminated unexpectedly');
  };
  await assert.rejects(async () => a.getUser('bob'), /terminated/);
  assert.equal(a.cache!.listening, false, 'not serving cached records any more');
  assert.notEqual(await a.getUser('alice'), cached, 'alice is read from PostgreSQL again');
});
