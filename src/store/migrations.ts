import type { Database } from './sqlite-driver.js';

/**
 * Schema steps, applied in order; PRAGMA user_version = number of steps applied.
 * Never edit a released step: append a new one (devices, used TOTP steps, ... come later).
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) STRICT;

  CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    method        TEXT,
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    locked_until  INTEGER,
    lock_reason   TEXT
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE totp (
    username   TEXT PRIMARY KEY REFERENCES users(username) ON DELETE CASCADE,
    secret_enc BLOB NOT NULL,
    algorithm  TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits     INTEGER NOT NULL CHECK (digits IN (6, 8)),
    period     INTEGER NOT NULL CHECK (period > 0),
    created_at INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;
  `,
  `
  ALTER TABLE users ADD COLUMN pin_hash TEXT;

  CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    username         TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    public_key       BLOB NOT NULL,
    token_hash       BLOB NOT NULL UNIQUE,
    push_token       TEXT,
    push_token_stale INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER
  ) STRICT;
  CREATE INDEX devices_by_user ON devices(username);

  CREATE TABLE activation_codes (
    code_hash  BLOB PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    with_totp  INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;
  `,
  // NULL = all: every lock before smart lockout was a lock from everywhere.
  `
  ALTER TABLE users ADD COLUMN lock_scope TEXT CHECK (lock_scope IN ('all', 'unfamiliar'));
  `,
  // PostgreSQL's step 4 makes writes notify other nodes' record caches; here another writer's commit
  // is seen through PRAGMA data_version (sqlite.ts), so there is nothing to create.
  `
  SELECT 1;
  `,
];

export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

/** Brings the database to the latest schema; returns the versions before and after. */
export function migrate(db: Database, steps: readonly string[] = MIGRATIONS): { from: number; to: number } {
  const version = () => db.pragma('user_version', { simple: true }) as number;
  const from = version();
  if (from > steps.length) {
    throw new MigrationError(
      `database schema version ${from} is newer than this program knows (${steps.length}); upgrade radius-mfa-proxy or restore a matching database`,
    );
  }
  // IMMEDIATE takes the write lock before reading the version, so two processes opening a
  // fresh file cannot both apply the same step.
  const applyNext = db.transaction(() => {
    const v = version();
    if (v >= steps.length) return false;
    db.exec(steps[v]!);
    db.pragma(`user_version = ${v + 1}`);
    return true;
  });
  while (applyNext.immediate()) {
    // one step per transaction
  }
  return { from, to: version() };
}
