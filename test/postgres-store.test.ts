// What only the PostgreSQL store does (the interface is in store-contract.test.ts): nodes starting at
// once, a key that cannot open the stored secrets, the config it needs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { configSchema } from '../src/config/schema.js';
import { type KeyError, keyFingerprint, resolveEncryptionKey, sealSecret } from '../src/store/secret-box.js';
import { MigrationError } from '../src/store/migrations.js';
import { describePostgresUrl, openPostgresStore } from '../src/store/postgres.js';
import { PG_MIGRATIONS } from '../src/store/postgres-migrations.js';
import { type StoreError } from '../src/store/store.js';
import { startPostgres, type PostgresInstance } from './helpers/postgres.js';

let server: PostgresInstance;
before(async () => {
  server = await startPostgres();
});
after(() => server.close());

const storeConfig = (url: string) => ({ type: 'postgres' as const, path: 'unused', url, pool: 2 });

async function sql<T extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client(url);
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

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
