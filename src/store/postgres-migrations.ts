// The PostgreSQL schema, step for step the same as the SQLite one (migrations.ts): step N here creates
// what step N there does, in PostgreSQL's types. test/store-contract.test.ts checks that both have the
// same tables and columns, so the two cannot drift.
import type pg from 'pg';
import { MigrationError } from './migrations.js';
import { USER_CHANGES_CHANNEL } from './postgres-user-cache.js';

export const PG_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );

  CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    method        TEXT,
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    locked_until  BIGINT,
    lock_reason   TEXT
  );

  CREATE TABLE totp (
    username   TEXT PRIMARY KEY REFERENCES users(username) ON DELETE CASCADE,
    secret_enc BYTEA NOT NULL,
    algorithm  TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits     INTEGER NOT NULL CHECK (digits IN (6, 8)),
    period     INTEGER NOT NULL CHECK (period > 0),
    created_at BIGINT NOT NULL
  );
  `,
  `
  ALTER TABLE users ADD COLUMN pin_hash TEXT;

  CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    username         TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    public_key       BYTEA NOT NULL,
    token_hash       BYTEA NOT NULL UNIQUE,
    push_token       TEXT,
    push_token_stale INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT
  );
  CREATE INDEX devices_by_user ON devices(username);

  CREATE TABLE activation_codes (
    code_hash  BYTEA PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    with_totp  INTEGER NOT NULL,
    created_at BIGINT NOT NULL
  );
  `,
  // NULL = all: every lock before smart lockout was a lock from everywhere (sqlite step 3).
  `
  ALTER TABLE users ADD COLUMN lock_scope TEXT CHECK (lock_scope IN ('all', 'unfamiliar'));
  `,
  // Every node keeps decrypted user records (postgres-user-cache.ts): each write of what getUser reads
  // (users, totp), by whoever makes it, tells every listening node which user changed, at commit.
  // '' = any user (TRUNCATE, or a name too long for a payload). SQLite's step 4 is empty.
  `
  CREATE FUNCTION radius_mfa_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
      PERFORM pg_notify('${USER_CHANGES_CHANNEL}', '');
      RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
      PERFORM pg_notify('${USER_CHANGES_CHANNEL}', CASE WHEN octet_length(OLD.username) < 4000 THEN OLD.username ELSE '' END);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.username IS DISTINCT FROM OLD.username) THEN
      PERFORM pg_notify('${USER_CHANGES_CHANNEL}', CASE WHEN octet_length(NEW.username) < 4000 THEN NEW.username ELSE '' END);
    END IF;
    RETURN NULL;
  END
  $$;

  CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION radius_mfa_user_changed();
  CREATE TRIGGER totp_changed AFTER INSERT OR UPDATE OR DELETE ON totp FOR EACH ROW EXECUTE FUNCTION radius_mfa_user_changed();
  CREATE TRIGGER users_truncated AFTER TRUNCATE ON users FOR EACH STATEMENT EXECUTE FUNCTION radius_mfa_user_changed();
  CREATE TRIGGER totp_truncated AFTER TRUNCATE ON totp FOR EACH STATEMENT EXECUTE FUNCTION radius_mfa_user_changed();
  `,
];

/**
 * Key of the session advisory lock held while migrating and checking the key: two nodes starting at
 * once against a fresh database take turns, so no step is applied twice. ("rmfa" in ASCII.)
 */
export const MIGRATION_LOCK = 0x726d6661;

/** Brings the database to the latest schema, under the advisory lock the caller holds; returns the versions. */
export async function migratePostgres(client: pg.ClientBase, steps: readonly string[] = PG_MIGRATIONS): Promise<{ from: number; to: number }> {
  await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
  const version = async () => Number((await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_version')).rows[0]?.v ?? 0);
  const from = await version();
  if (from > steps.length) {
    throw new MigrationError(
      `database schema version ${from} is newer than this program knows (${steps.length}); upgrade radius-mfa-proxy on this node (all nodes sharing a store must run the same version) or restore a matching database`,
    );
  }
  for (let v = from; v < steps.length; v++) {
    // One transaction per step: a failing step leaves the version and the schema as they were.
    await client.query('BEGIN');
    try {
      await client.query(steps[v]!);
      await client.query('INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)', [v + 1, Date.now()]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    }
  }
  return { from, to: await version() };
}
