// One contract for every Store backend: the same tests run against SQLite (a temp file) and PostgreSQL
// (a private server started here), so the two cannot drift. Backend-specific behaviour (SQLite's WAL,
// record cache and batched last-seen writes; PostgreSQL's migration lock) is in store.test.ts and
// postgres-store.test.ts.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sealSecret } from '../src/store/secret-box.js';
import { MIGRATIONS } from '../src/store/migrations.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { PG_MIGRATIONS } from '../src/store/postgres-migrations.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { Database } from '../src/store/sqlite-driver.js';
import { type StoreError, type Store } from '../src/store/store.js';
import type { TotpEnrollment } from '../src/mfa/enrollment.js';
import { sql, startPostgres, type PostgresInstance } from './helpers/postgres.js';

/** One empty store location (a file, a database) that can be opened several times. */
interface Location {
  open(key: Buffer, now?: () => number): Promise<Store>;
  /** Every byte the backend keeps for this location (files; table contents as text). */
  rawBytes(): Promise<Buffer>;
  /** Writes a sealed TOTP secret straight into the totp table, behind the store's back. */
  setSealed(username: string, sealed: Buffer): Promise<void>;
}

interface Backend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  fresh(t: TestContext): Promise<Location>;
}

const SECRET = Buffer.from('a-very-recognisable-totp-secret!');
const totp = (secret = SECRET): TotpEnrollment => ({ secret, algorithm: 'SHA256', digits: 8, period: 60 });
const newDevice = (id: string, username: string, tokenHash = randomBytes(32)) => ({ id, username, name: `${id} phone`, publicKey: Buffer.from([1, 2, 3]), tokenHash, pushToken: null });

const sqlite: Backend = {
  name: 'sqlite',
  async setup() {},
  async teardown() {},
  async fresh(t) {
    const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-contract-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'users.db');
    return {
      async open(key, now) {
        return openSqliteStore({ type: 'sqlite', path }, key, now ? { now } : {});
      },
      async rawBytes() {
        return Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
      },
      async setSealed(username, sealed) {
        const db = new Database(path);
        db.prepare('UPDATE totp SET secret_enc = ? WHERE username = ?').run(sealed, username);
        db.close();
      },
    };
  },
};

let server: PostgresInstance | undefined;
const postgres: Backend = {
  name: 'postgres',
  async setup() {
    server = await startPostgres();
  },
  async teardown() {
    await server?.close();
  },
  async fresh() {
    const url = await server!.createDatabase();
    return {
      async open(key, now) {
        return openPostgresStore({ type: 'postgres', path: 'unused', url, pool: 4 }, key, now ? { now } : {});
      },
      async rawBytes() {
        const tables = ['meta', 'users', 'totp', 'devices', 'activation_codes'];
        const parts = await Promise.all(tables.map((name) => sql<{ row: string }>(url, `SELECT t::text AS row FROM ${name} t`)));
        const sealed = await sql<{ secret_enc: Buffer }>(url, 'SELECT secret_enc FROM totp');
        return Buffer.concat([...parts.flat().map((r) => Buffer.from(r.row)), ...sealed.map((r) => r.secret_enc)]);
      },
      async setSealed(username, sealed) {
        await sql(url, 'UPDATE totp SET secret_enc = $1 WHERE username = $2', [sealed, username]);
      },
    };
  },
};

for (const backend of [sqlite, postgres]) {
  describe(`Store contract: ${backend.name}`, () => {
    before(() => backend.setup());
    after(() => backend.teardown());

    /** A fresh, empty store, closed after the test. */
    async function fresh(t: TestContext, now?: () => number): Promise<{ store: Store; location: Location; key: Buffer }> {
      const location = await backend.fresh(t);
      const key = randomBytes(32);
      const store = await location.open(key, now);
      let closed = false;
      const close = store.close.bind(store);
      store.close = () => {
        if (closed) return;
        closed = true;
        return close();
      };
      t.after(() => store.close());
      return { store, location, key };
    }

    test('adds, gets, lists and removes users', async (t) => {
      const { store } = await fresh(t, () => 1_700_000_000_000);
      await store.addUser({ username: 'bob', passwordHash: '$argon2id$v=19$m=65536,p=4,t=3$c2FsdHNhbHRzYWx0$aGFzaGhhc2g' });
      await store.addUser({ username: 'alice', method: 'challenge', totp: totp() });

      assert.deepEqual(await store.getUser('alice'), {
        username: 'alice',
        method: 'challenge',
        passwordHash: null,
        totp: totp(),
        lockedUntil: null,
        lockReason: null,
        lockScope: null,
        pinHash: null,
        createdAt: 1_700_000_000_000,
      });
      assert.equal((await store.getUser('bob'))?.totp, null);
      assert.equal(await store.getUser('carol'), undefined);
      assert.deepEqual((await store.listUsers()).map((u) => u.username), ['alice', 'bob']);
      assert.deepEqual(await store.listUsernames(), ['alice', 'bob']);

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
      assert.equal(await store.setPinHashIfUnset('bob', '$argon2id$first'), true, 'no PIN yet: set');
      assert.equal(await store.setPinHashIfUnset('bob', '$argon2id$second'), false, 'a PIN is set: left alone');
      assert.equal((await store.getUser('bob'))?.pinHash, '$argon2id$first');
      assert.equal(await store.setPinHashIfUnset('carol', '$argon2id$x'), false, 'no such user');
      await store.setPinHash('bob', '$argon2id$pin');
      assert.equal((await store.getUser('bob'))?.pinHash, '$argon2id$pin');

      await assert.rejects(store.setMethod('carol', 'totp'), (e: StoreError) => e.code === 'USER_NOT_FOUND');
      await assert.rejects(store.setTotp('carol', totp()), (e: StoreError) => e.code === 'USER_NOT_FOUND');
      await assert.rejects(store.setPasswordHash('carol', null), (e: StoreError) => e.code === 'USER_NOT_FOUND');
      await assert.rejects(store.setPinHash('carol', null), (e: StoreError) => e.code === 'USER_NOT_FOUND');

      assert.equal(await store.removeUser('alice'), true);
      assert.equal(await store.removeUser('alice'), false);
      assert.equal(await store.getUser('alice'), undefined);
      // ON DELETE CASCADE: the enrollment went with the user, so re-adding starts clean.
      await store.addUser({ username: 'alice' });
      assert.equal((await store.getUser('alice'))?.totp, null);
    });

    test('a name no store can hold (U+0000) is nobody, never an error', async (t) => {
      const { store } = await fresh(t);
      assert.equal(await store.getUser('ali\0ce'), undefined);
      assert.equal(await store.removeUser('ali\0ce'), false);
    });

    test('a store opened again (another node, a restart) reads what was written', async (t) => {
      const { store, location, key } = await fresh(t);
      await store.addUser({ username: 'alice', method: 'totp', totp: totp() });
      const other = await location.open(key);
      t.after(() => other.close());
      assert.deepEqual((await other.getUser('alice'))?.totp, totp());
      await other.lockUser('alice', 5, 'x');
      await other.setMethod('alice', 'push');
      await new Promise((r) => setImmediate(r));
      assert.equal((await store.getUser('alice'))?.lockedUntil, 5);
      assert.equal((await store.getUser('alice'))?.method, 'push');
    });

    test('TOTP secrets are encrypted at rest: the stored bytes never contain the secret', async (t) => {
      const { store, location } = await fresh(t);
      await store.addUser({ username: 'alice', totp: totp() });
      await store.addUsers([{ username: 'bob', totp: totp() }]);
      await store.close();
      const bytes = await location.rawBytes();
      assert.ok(bytes.length > 0);
      assert.equal(bytes.indexOf(SECRET), -1, 'the plaintext secret is stored');
      assert.equal(bytes.indexOf(Buffer.from(SECRET.toString('hex'))), -1);
      assert.equal(bytes.indexOf(Buffer.from(SECRET.toString('base64'))), -1);
    });

    test('opening with the wrong key fails with KEY_MISMATCH and says which key is wrong', async (t) => {
      const { store, location } = await fresh(t);
      await store.addUser({ username: 'alice', totp: totp() });
      await store.close();
      await assert.rejects(
        location.open(randomBytes(32)),
        (e: StoreError) => e.code === 'KEY_MISMATCH' && /does not match/.test(e.message) && /key/.test(e.message),
      );
    });

    test('a secret sealed under another key (or moved to another user) reads as KEY_MISMATCH, never as garbage', async (t) => {
      const { store, location, key } = await fresh(t);
      await store.addUsers([
        { username: 'alice', totp: totp() },
        { username: 'bob', totp: totp() },
        { username: 'carol', totp: totp() },
      ]);
      await store.close();
      await location.setSealed('bob', sealSecret(randomBytes(32), SECRET, 'totp:bob'));
      await location.setSealed('carol', sealSecret(key, SECRET, 'totp:alice'));
      const reopened = await location.open(key);
      t.after(() => reopened.close());
      assert.deepEqual((await reopened.getUser('alice'))?.totp, totp());
      await assert.rejects(async () => reopened.getUser('bob'), (e: StoreError) => e.code === 'KEY_MISMATCH' && /does not match this database/.test(e.message));
      await assert.rejects(async () => reopened.getUser('carol'), (e: StoreError) => e.code === 'KEY_MISMATCH');
    });

    test('addUsers writes nothing when one user is a duplicate', async (t) => {
      const { store } = await fresh(t);
      await store.addUser({ username: 'existing' });
      await assert.rejects(
        store.addUsers([{ username: 'u1', totp: totp() }, { username: 'u2' }, { username: 'existing' }, { username: 'u3' }]),
        (e: StoreError) => e.code === 'USER_EXISTS' && /existing/.test(e.message),
      );
      await assert.rejects(store.addUsers([{ username: 'u1' }, { username: 'u1' }]), (e: StoreError) => e.code === 'USER_EXISTS');
      assert.deepEqual((await store.listUsers()).map((u) => u.username), ['existing']);
    });

    test('locks and unlocks a user with its scope; locking a name without a row creates it locked', async (t) => {
      const { store } = await fresh(t);
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
      await store.lockUser('ldap-only', 1_800_000_000_000, 'too many failed passwords', 'unfamiliar');
      assert.equal((await store.getUser('ldap-only'))?.lockedUntil, 1_800_000_000_000);
      assert.equal((await store.getUser('ldap-only'))?.lockScope, 'unfamiliar', 'a lock from failures spares familiar sources');
      assert.equal(locked?.lockScope, 'all', 'a lock without a scope (fraud, an admin) holds everywhere');
    });

    test('devices: added, found by token hash, listed, updated, removed, and gone with their user', async (t) => {
      const { store } = await fresh(t, () => 1000);
      await store.addUsers([{ username: 'alice' }, { username: 'bob' }]);
      const token = randomBytes(32);
      await store.devices.add(newDevice('d1', 'alice', token));
      await store.devices.add(newDevice('d2', 'bob'));
      await store.devices.add(newDevice('d3', 'alice'));
      await assert.rejects(store.devices.add(newDevice('d4', 'nobody')), (e: StoreError) => e.code === 'USER_NOT_FOUND');

      assert.deepEqual(await store.devices.byTokenHash(token), {
        id: 'd1',
        username: 'alice',
        name: 'd1 phone',
        publicKey: Buffer.from([1, 2, 3]),
        pushToken: null,
        pushTokenStale: false,
        createdAt: 1000,
        lastSeenAt: null,
      });
      assert.equal(await store.devices.byTokenHash(randomBytes(32)), undefined);
      assert.deepEqual((await store.devices.list()).map((d) => d.id), ['d1', 'd3', 'd2']);
      assert.deepEqual((await store.devices.list('alice')).map((d) => d.id), ['d1', 'd3']);

      await store.devices.setPushToken('d1', 'fcm-token');
      await store.devices.markPushTokenStale('d1');
      let d1 = (await store.devices.list('alice'))[0]!;
      assert.equal(d1.pushToken, 'fcm-token');
      assert.equal(d1.pushTokenStale, true);
      await store.devices.setPushToken('d1', 'fcm-token-2');
      await store.devices.touch('d1', 5000);
      d1 = (await store.devices.list('alice'))[0]!;
      assert.equal(d1.pushTokenStale, false, 'a new token is fresh');
      assert.equal(d1.lastSeenAt, 5000, 'touch is read back at once');

      assert.equal(await store.devices.remove('d3'), true);
      assert.equal(await store.devices.remove('d3'), false);
      await store.removeUser('alice');
      assert.deepEqual((await store.devices.list()).map((d) => d.id), ['d2']);
    });

    test('activation codes are single use, refused after expiry, and need an existing user', async (t) => {
      const { store } = await fresh(t, () => 1000);
      await store.addUser({ username: 'alice' });
      const code = randomBytes(32);
      await store.devices.addActivation('alice', code, 10_000, true);
      await assert.rejects(store.devices.addActivation('nobody', randomBytes(32), 10_000, false), (e: StoreError) => e.code === 'USER_NOT_FOUND');
      // Two takers at once (two nodes): exactly one gets it.
      const taken = await Promise.all([store.devices.consumeActivation(code, 2000), store.devices.consumeActivation(code, 2000)]);
      assert.deepEqual(taken.filter(Boolean), [{ username: 'alice', withTotp: true }]);
      const late = randomBytes(32);
      await store.devices.addActivation('alice', late, 3000, false);
      assert.equal(await store.devices.consumeActivation(late, 3000), undefined, 'expired');
      assert.equal(await store.devices.consumeActivation(late, 1000), undefined, 'and gone');
    });

    test('ping answers while the store is open', async (t) => {
      const { store } = await fresh(t);
      await store.ping?.();
    });
  });
}

test('the SQLite and PostgreSQL schemas have the same number of steps and the same tables and columns', async (t) => {
  assert.equal(PG_MIGRATIONS.length, MIGRATIONS.length, 'a step added to one backend must be added to the other');
  const db = new Database(':memory:');
  for (const step of MIGRATIONS) db.exec(step);
  const sqliteColumns = (db.prepare("SELECT m.name AS t, p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' ORDER BY 1, 2").all() as { t: string; c: string }[]).map(
    (r) => `${r.t}.${r.c}`,
  );
  db.close();
  const pgServer = await startPostgres();
  t.after(() => pgServer.close());
  const store = await openPostgresStore({ type: 'postgres', path: 'unused', url: await pgServer.createDatabase(), pool: 1 }, randomBytes(32));
  const rows = (
    await store.pool.query<{ t: string; c: string }>(
      "SELECT table_name AS t, column_name AS c FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_version' ORDER BY 1, 2",
    )
  ).rows;
  await store.close();
  assert.deepEqual(
    rows.map((r) => `${r.t}.${r.c}`),
    sqliteColumns,
  );
});
