// The store for several nodes: the same Store as SQLite, in PostgreSQL (pg). Every node reads and
// writes the one database. getUser is served from a cache of decrypted records that PostgreSQL
// invalidates (postgres-user-cache.ts: LISTEN/NOTIFY): a lock, an enrollment or a removed user made
// through node A is what node B reads once the notification has arrived (about a millisecond).
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { Config, Method } from '../config/schema.js';
import { keyFingerprint, openSecret, sealSecret } from './secret-box.js';
import { MIGRATION_LOCK, migratePostgres } from './postgres-migrations.js';
import { PostgresDevices } from './postgres-devices.js';
import { PostgresUserCache } from './postgres-user-cache.js';
import { totpContext } from './sqlite.js';
import { StoreError, USER_CACHE_SIZE, type LockScope, type NewUser, type Store, type UserRecord } from './store.js';
import type { TotpAlgorithm, TotpEnrollment } from '../mfa/enrollment.js';
import type { Awaitable } from '../shared/awaitable.js';

interface UserRow {
  username: string;
  method: string | null;
  password_hash: string | null;
  created_at: string;
  locked_until: string | null;
  lock_reason: string | null;
  pin_hash: string | null;
  lock_scope: string | null;
  secret_enc: Buffer | null;
  algorithm: string | null;
  digits: number | null;
  period: number | null;
}

const SELECT_USER = `
  SELECT u.username, u.method, u.password_hash, u.created_at, u.locked_until, u.lock_reason, u.pin_hash, u.lock_scope,
         t.secret_enc, t.algorithm, t.digits, t.period
  FROM users u LEFT JOIN totp t ON t.username = u.username`;

/** SQLSTATE unique_violation. */
const UNIQUE_VIOLATION = '23505';

export interface PostgresStoreOptions {
  now?: () => number;
  /** Errors of idle pooled connections (the server went away): reported, never thrown (they would crash the process). */
  onIdleError?: (err: Error) => void;
  /** How long to wait for a connection before a query fails (ms). Default 2000. */
  connectTimeoutMs?: number;
  /** Decrypted user records kept (0 = none, and no LISTEN connection: the CLI). Default USER_CACHE_SIZE. */
  cacheSize?: number;
  /** The LISTEN connection's first reconnect wait (ms); tests shorten or lengthen it. */
  listenRetryMs?: number;
}

/** PostgreSQL text cannot hold U+0000: such a name was never stored, so it is nobody. */
const storable = (username: string) => !username.includes('\0');

/** A printable form of the URL for messages: the password is never shown. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

export class PostgresStore implements Store {
  readonly devices: PostgresDevices;
  private readonly now: () => number;

  constructor(
    readonly pool: pg.Pool,
    private readonly key: Buffer,
    private readonly where: string,
    options: PostgresStoreOptions = {},
    /** undefined = every getUser reads PostgreSQL. */
    readonly cache?: PostgresUserCache,
  ) {
    this.now = options.now ?? Date.now;
    this.devices = new PostgresDevices(pool, this.now);
  }

  /** A cached record at once (shared/awaitable.ts): NOTIFY keeps the cache current; else a read. */
  getUser(username: string): Awaitable<UserRecord | undefined> {
    if (!storable(username)) return undefined;
    return this.cache?.get(username) ?? this.readUser(username);
  }

  private async readUser(username: string): Promise<UserRecord | undefined> {
    const ticket = this.cache?.ticket() ?? -1;
    const r = await this.pool.query<UserRow>({ name: 'get-user', text: `${SELECT_USER} WHERE u.username = $1`, values: [username] }).catch((err: unknown) => {
      this.cache?.suspect();
      throw err;
    });
    if (!r.rows[0]) return undefined;
    const record = this.toRecord(r.rows[0]);
    this.cache?.put(username, record, ticket);
    return record;
  }

  async listUsers(): Promise<UserRecord[]> {
    const r = await this.pool.query<UserRow>(`${SELECT_USER} ORDER BY u.username`);
    return r.rows.map((row) => this.toRecord(row));
  }

  async listUsernames(): Promise<string[]> {
    const r = await this.pool.query<{ username: string }>('SELECT username FROM users ORDER BY username');
    return r.rows.map((row) => row.username);
  }

  async addUser(user: NewUser): Promise<void> {
    await this.addUsers([user]);
  }

  async addUsers(users: NewUser[]): Promise<void> {
    await this.write(
      users.map((u) => u.username),
      () =>
        this.transaction(async (c) => {
          for (const u of users) {
            try {
              await c.query('INSERT INTO users (username, method, password_hash, created_at) VALUES ($1, $2, $3, $4)', [u.username, u.method ?? null, u.passwordHash ?? null, this.now()]);
            } catch (err) {
              if ((err as { code?: string }).code === UNIQUE_VIOLATION) throw new StoreError('USER_EXISTS', `user ${u.username} already exists`);
              throw err;
            }
            if (u.totp) await this.writeTotp(c, u.username, u.totp);
          }
        }),
    );
  }

  async removeUser(username: string): Promise<boolean> {
    if (!storable(username)) return false;
    return this.write([username], async () => ((await this.pool.query('DELETE FROM users WHERE username = $1', [username])).rowCount ?? 0) > 0);
  }

  async setMethod(username: string, method: Method | null): Promise<void> {
    await this.updateExisting(username, 'UPDATE users SET method = $1 WHERE username = $2', [method, username]);
  }

  async setPasswordHash(username: string, hash: string | null): Promise<void> {
    await this.updateExisting(username, 'UPDATE users SET password_hash = $1 WHERE username = $2', [hash, username]);
  }

  async setPinHashIfUnset(username: string, hash: string): Promise<boolean> {
    if (!storable(username)) return false;
    return this.write([username], async () => (await this.pool.query('UPDATE users SET pin_hash = $1 WHERE username = $2 AND pin_hash IS NULL', [hash, username])).rowCount === 1);
  }

  async setPinHash(username: string, hash: string | null): Promise<void> {
    await this.updateExisting(username, 'UPDATE users SET pin_hash = $1 WHERE username = $2', [hash, username]);
  }

  async setTotp(username: string, totp: TotpEnrollment | null): Promise<void> {
    if (!storable(username)) throw notFound(username);
    await this.write([username], () =>
      this.transaction(async (c) => {
        // FOR UPDATE: a removeUser on another node cannot slip between the check and the write.
        if ((await c.query('SELECT 1 FROM users WHERE username = $1 FOR UPDATE', [username])).rowCount === 0) throw notFound(username);
        if (totp) await this.writeTotp(c, username, totp);
        else await c.query('DELETE FROM totp WHERE username = $1', [username]);
      }),
    );
  }

  async lockUser(username: string, until: number, reason: string, scope: LockScope = 'all'): Promise<void> {
    // A directory user may have no row yet: the lock makes one (a lock that throws would never land).
    await this.write([username], () =>
      this.pool.query(
        `INSERT INTO users (username, created_at, locked_until, lock_reason, lock_scope) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (username) DO UPDATE SET locked_until = excluded.locked_until, lock_reason = excluded.lock_reason, lock_scope = excluded.lock_scope`,
        [username, this.now(), until, reason, scope],
      ),
    );
  }

  async unlockUser(username: string): Promise<boolean> {
    if (!storable(username)) throw notFound(username);
    // One statement: the old lock is read and cleared under the same row lock.
    const r = await this.write([username], () =>
      this.pool.query<{ was: string | null }>(
        `UPDATE users u SET locked_until = NULL, lock_reason = NULL, lock_scope = NULL
         FROM (SELECT username, locked_until FROM users WHERE username = $1 FOR UPDATE) old
         WHERE u.username = old.username RETURNING old.locked_until AS was`,
        [username],
      ),
    );
    if (r.rowCount === 0) throw notFound(username);
    return r.rows[0]!.was !== null;
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.cache?.close();
    await this.pool.end();
  }

  /**
   * Runs a write, then drops its users from this node's cache (also when it throws: it may have
   * committed), so this node's next read sees it without waiting for the notification.
   */
  private async write<T>(usernames: string[], fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } finally {
      this.cache?.forget(usernames);
    }
  }

  private async updateExisting(username: string, sql: string, values: unknown[]): Promise<void> {
    if (!storable(username)) throw notFound(username);
    if ((await this.write([username], () => this.pool.query(sql, values))).rowCount === 0) throw notFound(username);
  }

  private async writeTotp(c: pg.ClientBase, username: string, t: TotpEnrollment): Promise<void> {
    const sealed = sealSecret(this.key, t.secret, totpContext(username));
    await c.query(
      `INSERT INTO totp (username, secret_enc, algorithm, digits, period, created_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (username) DO UPDATE SET secret_enc = excluded.secret_enc, algorithm = excluded.algorithm,
         digits = excluded.digits, period = excluded.period, created_at = excluded.created_at`,
      [username, sealed, t.algorithm, t.digits, t.period, this.now()],
    );
  }

  private async transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  }

  private toRecord(row: UserRow): UserRecord {
    let totp: TotpEnrollment | null = null;
    if (row.secret_enc) {
      const opened = openSecret(this.key, row.secret_enc, totpContext(row.username));
      if (!opened.ok) {
        throw new StoreError(
          'KEY_MISMATCH',
          `cannot decrypt the TOTP secret of ${row.username} in ${this.where}: store.encryption_key does not match this database; every node must use the key the store was created with`,
        );
      }
      totp = Object.freeze({ secret: opened.plaintext, algorithm: row.algorithm as TotpAlgorithm, digits: row.digits as 6 | 8, period: row.period! });
    }
    return Object.freeze({
      username: row.username,
      method: row.method as Method | null,
      passwordHash: row.password_hash,
      totp,
      lockedUntil: row.locked_until === null ? null : Number(row.locked_until),
      lockReason: row.lock_reason,
      lockScope: row.locked_until === null ? null : row.lock_scope === 'unfamiliar' ? 'unfamiliar' : 'all',
      pinHash: row.pin_hash,
      createdAt: Number(row.created_at),
    });
  }
}

function notFound(username: string): StoreError {
  return new StoreError('USER_NOT_FOUND', `no user ${username}`);
}

/** pg's connection options for store.url / pool / tls. */
export function poolConfig(config: Pick<Config['store'], 'url' | 'pool' | 'tls'>, connectTimeoutMs = 2000): pg.PoolConfig {
  const tls = config.tls;
  return {
    connectionString: config.url,
    max: config.pool ?? 10,
    application_name: 'radius-mfa',
    // Fail fast when the server is down: the request is rejected (store_unavailable), not held.
    connectionTimeoutMillis: connectTimeoutMs,
    query_timeout: 5000,
    idleTimeoutMillis: 30_000,
    ssl: tls
      ? {
          rejectUnauthorized: true,
          ca: tls.ca ? readFileSync(tls.ca, 'utf8') : undefined,
          cert: tls.cert ? readFileSync(tls.cert, 'utf8') : undefined,
          key: tls.key ? readFileSync(tls.key, 'utf8') : undefined,
        }
      : undefined,
  };
}

/**
 * Connects, migrates (under an advisory lock, so nodes starting together take turns) and checks that
 * `key` is the key the stored secrets were sealed with: its fingerprint in meta, and the first stored
 * secret opened with it. A wrong key is refused here, at start, with KEY_MISMATCH.
 */
export async function openPostgresStore(config: Config['store'], key: Buffer, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  if (!config.url) throw new Error('bug: store.url is required with store.type postgres (the config schema says so)');
  const where = describePostgresUrl(config.url);
  const pool = new pg.Pool(poolConfig(config, options.connectTimeoutMs));
  pool.on('error', (err) => options.onIdleError?.(err));
  try {
    const c = await pool.connect();
    try {
      await c.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      try {
        await migratePostgres(c);
        await checkKey(c, key, where);
      } finally {
        await c.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
      }
    } finally {
      c.release();
    }
  } catch (err) {
    await pool.end().catch(() => {});
    throw err;
  }
  const cacheSize = options.cacheSize ?? USER_CACHE_SIZE;
  const cache =
    cacheSize > 0
      ? new PostgresUserCache({
          size: cacheSize,
          // The pool's settings (URL, TLS, timeouts) and one connection of its own, outside the pool's count.
          newClient: () => new pg.Client({ ...poolConfig(config, options.connectTimeoutMs), application_name: 'radius-mfa-listen', keepAlive: true }),
          onError: options.onIdleError,
          retryMs: options.listenRetryMs,
        })
      : undefined;
  // A failed first LISTEN is retried in the background; until it succeeds every read goes to PostgreSQL.
  await cache?.start();
  return new PostgresStore(pool, key, where, options, cache);
}

async function checkKey(c: pg.ClientBase, key: Buffer, where: string): Promise<void> {
  const fingerprint = keyFingerprint(key);
  await c.query("INSERT INTO meta (key, value) VALUES ('key_check', $1) ON CONFLICT (key) DO NOTHING", [fingerprint]);
  const stored = (await c.query<{ value: string }>("SELECT value FROM meta WHERE key = 'key_check'")).rows[0]?.value;
  const mismatch = () =>
    new StoreError(
      'KEY_MISMATCH',
      `the encryption key does not match the database ${where}: store.encryption_key is not the key this store was created with; every node must use the same key`,
    );
  if (stored !== fingerprint) throw mismatch();
  // The fingerprint says which key was meant; one real secret says the rows were sealed with it (a copy gone wrong would not be).
  const sample = (await c.query<{ username: string; secret_enc: Buffer }>('SELECT username, secret_enc FROM totp ORDER BY username LIMIT 1')).rows[0];
  if (sample && !openSecret(key, sample.secret_enc, totpContext(sample.username)).ok) throw mismatch();
}
