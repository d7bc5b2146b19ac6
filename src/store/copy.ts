// `store copy --to postgres://...`: an existing SQLite store moved to PostgreSQL when one box is no longer
// enough. Every table, every row, in one PostgreSQL transaction: the target holds all of it or none of it.
// Sealed secrets are copied as they are (same key, same per-user context), after each was opened with
// the key once, so a copy never carries a secret no node could read.
import { Database } from './sqlite-driver.js';
import type { Config } from '../config/schema.js';
import { keyFingerprint, openSecret } from './secret-box.js';
import { MIGRATIONS } from './migrations.js';
import { totpContext } from './sqlite.js';

export class CopyError extends Error {
  constructor(
    readonly code: 'KEY_MISMATCH' | 'TARGET_NOT_EMPTY' | 'OLD_SCHEMA',
    message: string,
  ) {
    super(message);
    this.name = 'CopyError';
  }
}

export interface CopyResult {
  users: number;
  passwordHashes: number;
  pinHashes: number;
  locked: number;
  totp: number;
  devices: number;
  activationCodes: number;
  /** Rows the target held before and --force deleted. */
  replaced: number;
  target: string;
}

/** The tables in insert order (parents first), with their columns: the same in both schemas. */
const TABLES = {
  users: ['username', 'method', 'password_hash', 'created_at', 'locked_until', 'lock_reason', 'pin_hash', 'lock_scope'],
  totp: ['username', 'secret_enc', 'algorithm', 'digits', 'period', 'created_at'],
  devices: ['id', 'username', 'name', 'public_key', 'token_hash', 'push_token', 'push_token_stale', 'created_at', 'last_seen_at'],
  activation_codes: ['code_hash', 'username', 'expires_at', 'with_totp', 'created_at'],
} as const;
type Table = keyof typeof TABLES;

/** Reads every row of the SQLite store in one read transaction (a consistent snapshot while a server writes). */
function readSqlite(path: string, key: Buffer): Record<Table, unknown[][]> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version !== MIGRATIONS.length) {
      throw new CopyError('OLD_SCHEMA', `${path} has schema version ${version}, this program ${MIGRATIONS.length}: start the server on it once (it migrates), then copy`);
    }
    return db.transaction(() => {
      const stored = db.prepare<[], string>("SELECT value FROM meta WHERE key = 'key_check'").pluck().get();
      if (stored !== keyFingerprint(key)) throw new CopyError('KEY_MISMATCH', `the configured key does not match ${path}: point store.key_file (or store.encryption_key) at its key`);
      const rows = {} as Record<Table, unknown[][]>;
      for (const [table, columns] of Object.entries(TABLES) as [Table, readonly string[]][]) {
        rows[table] = db.prepare(`SELECT ${columns.join(', ')} FROM ${table} ORDER BY 1`).raw().all() as unknown[][];
      }
      for (const [username, sealed] of rows.totp as [string, Uint8Array][]) {
        if (!openSecret(key, sealed, totpContext(username)).ok) {
          throw new CopyError('KEY_MISMATCH', `the TOTP secret of ${username} in ${path} does not open with the configured key: nothing copied`);
        }
      }
      return rows;
    })();
  } finally {
    db.close();
  }
}

/**
 * Copies the SQLite store at `sqlitePath` into the PostgreSQL database at `target.url` (migrated first).
 * A target with any user, device or activation code is refused unless `force`, which replaces its
 * contents, inside the same transaction.
 */
export async function copySqliteToPostgres(sqlitePath: string, key: Buffer, target: Pick<Config['store'], 'url' | 'tls'>, { force = false } = {}): Promise<CopyResult> {
  const rows = readSqlite(sqlitePath, key);
  // pg is loaded here, not when the CLI (and so `serve`) loads this file: start-up time.
  const { describePostgresUrl, openPostgresStore } = await import('./postgres.js');
  const where = describePostgresUrl(target.url!);
  const store = await openPostgresStore({ type: 'postgres', path: sqlitePath, url: target.url, tls: target.tls, pool: 1 }, key, { cacheSize: 0 });
  let replaced = 0;
  try {
    const c = await store.pool.connect();
    try {
      await c.query('BEGIN');
      // Nobody else writes these tables until the copy commits (a node started meanwhile waits).
      await c.query('LOCK TABLE users, totp, devices, activation_codes IN EXCLUSIVE MODE');
      const count = async (table: Table) => Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
      const existing = (await count('users')) + (await count('devices')) + (await count('activation_codes'));
      if (existing > 0 && !force) {
        throw new CopyError('TARGET_NOT_EMPTY', `${where} already holds ${existing} row${existing === 1 ? '' : 's'} (users, devices, activation codes): nothing copied; add --force to replace its contents with this store's`);
      }
      if (existing > 0) {
        replaced = existing + (await count('totp'));
        for (const table of Object.keys(TABLES).reverse()) await c.query(`DELETE FROM ${table}`);
      }
      for (const [table, columns] of Object.entries(TABLES) as [Table, readonly string[]][]) {
        const placeholders = columns.map((_, i) => `$${i + 1}`).join(', ');
        const sql = `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${placeholders})`;
        for (const row of rows[table]) await c.query(sql, row.map((v) => (v instanceof Uint8Array ? Buffer.from(v) : v)));
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  } finally {
    await store.close();
  }
  const users = rows.users as [string, unknown, string | null, number, number | null, unknown, string | null][];
  return {
    users: users.length,
    passwordHashes: users.filter((u) => u[2] !== null).length,
    pinHashes: users.filter((u) => u[6] !== null).length,
    locked: users.filter((u) => u[4] !== null).length,
    totp: rows.totp.length,
    devices: rows.devices.length,
    activationCodes: rows.activation_codes.length,
    replaced,
    target: where,
  };
}
