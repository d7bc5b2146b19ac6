import { LRUCache } from 'lru-cache';
import { lazy } from '../shared/lazy.js';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Config, Method } from '../config/schema.js';
import { keyFingerprint, openSecret, sealSecret } from './secret-box.js';
import { migrate } from './migrations.js';
import { Database } from './sqlite-driver.js';
import { SqliteDevices } from './sqlite-devices.js';
import { StoreError, USER_CACHE_SIZE, type LockScope, type NewUser, type Store, type UserRecord } from './store.js';
import type { TotpAlgorithm, TotpEnrollment } from '../mfa/enrollment.js';

// Raw (array) rows: about a third cheaper than objects on the per-request path.
type UserRow = [
  username: string,
  method: string | null,
  password_hash: string | null,
  created_at: number,
  locked_until: number | null,
  lock_reason: string | null,
  pin_hash: string | null,
  lock_scope: string | null,
  secret_enc: Uint8Array | null,
  algorithm: string | null,
  digits: number | null,
  period: number | null,
];

const SELECT_USER = `
  SELECT u.username, u.method, u.password_hash, u.created_at, u.locked_until, u.lock_reason, u.pin_hash, u.lock_scope,
         t.secret_enc, t.algorithm, t.digits, t.period
  FROM users u LEFT JOIN totp t ON t.username = u.username`;

export interface SqliteStoreOptions {
  now?: () => number;
  busyTimeoutMs?: number;
  /** Decrypted user records kept in memory (0 = none). Default USER_CACHE_SIZE. */
  cacheSize?: number;
}

/** AES-GCM additional data of a TOTP secret: a sealed secret cannot be moved to another user. */
export const totpContext = (username: string) => `totp:${username}`;

function isSqliteError(err: unknown, code: string): boolean {
  return err instanceof Error && (err as { code?: string }).code === code;
}

/**
 * The embedded store. Work is synchronous inside (better-sqlite3); every query is on a primary key.
 * getUser is served from an LRU of decrypted records that is dropped whenever another connection
 * (e.g. the CLI) commits: PRAGMA data_version changes exactly then. Own writes evict their users.
 */
export class SqliteStore implements Store {
  private readonly now: () => number;
  private readonly stmt;
  private readonly insertAll: (users: NewUser[]) => void;
  /** Made on first use (shared/lazy.ts): its preallocated arrays would cost start-up time before the first answer. */
  private readonly cache: (() => LRUCache<string, UserRecord>) | undefined;
  private dataVersion: number;
  private versionChecked = false;
  private readonly allowVersionCheck = () => {
    this.versionChecked = false;
  };
  readonly devices: SqliteDevices;

  constructor(
    private readonly db: Database,
    private readonly key: Buffer,
    private readonly path: string,
    options: SqliteStoreOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.devices = new SqliteDevices(db, this.now);
    const cacheSize = options.cacheSize ?? USER_CACHE_SIZE;
    this.cache = cacheSize > 0 ? lazy(() => new LRUCache({ max: cacheSize })) : undefined;
    this.stmt = {
      dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(),
      getUser: db.prepare<[string], UserRow>(`${SELECT_USER} WHERE u.username = ?`).raw(),
      listUsers: db.prepare<[], UserRow>(`${SELECT_USER} ORDER BY u.username`).raw(),
      listUsernames: db.prepare<[], string>('SELECT username FROM users ORDER BY username').pluck(),
      insertUser: db.prepare<[string, string | null, string | null, number]>(
        'INSERT INTO users (username, method, password_hash, created_at) VALUES (?, ?, ?, ?)',
      ),
      upsertTotp: db.prepare<[string, Buffer, string, number, number, number]>(
        `INSERT INTO totp (username, secret_enc, algorithm, digits, period, created_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (username) DO UPDATE SET secret_enc = excluded.secret_enc, algorithm = excluded.algorithm,
           digits = excluded.digits, period = excluded.period, created_at = excluded.created_at`,
      ),
      deleteTotp: db.prepare<[string]>('DELETE FROM totp WHERE username = ?'),
      userExists: db.prepare<[string], number>('SELECT 1 FROM users WHERE username = ?').pluck(),
      removeUser: db.prepare<[string]>('DELETE FROM users WHERE username = ?'),
      setMethod: db.prepare<[string | null, string]>('UPDATE users SET method = ? WHERE username = ?'),
      setPasswordHash: db.prepare<[string | null, string]>('UPDATE users SET password_hash = ? WHERE username = ?'),
      // A directory user may have no row yet: the lock makes one (a lock that throws would never land).
      lockUser: db.prepare<[string, number, number, string, string]>(
        'INSERT INTO users (username, created_at, locked_until, lock_reason, lock_scope) VALUES (?, ?, ?, ?, ?) ON CONFLICT(username) DO UPDATE SET locked_until = excluded.locked_until, lock_reason = excluded.lock_reason, lock_scope = excluded.lock_scope',
      ),
      getLock: db.prepare<[string], { locked_until: number | null }>('SELECT locked_until FROM users WHERE username = ?'),
      setPinHash: db.prepare<[string | null, string]>('UPDATE users SET pin_hash = ? WHERE username = ?'),
      setPinHashIfUnset: db.prepare<[string, string]>('UPDATE users SET pin_hash = ? WHERE username = ? AND pin_hash IS NULL'),
      unlockUser: db.prepare<[string]>('UPDATE users SET locked_until = NULL, lock_reason = NULL, lock_scope = NULL WHERE username = ?'),
    };
    this.dataVersion = this.stmt.dataVersion.get()!;
    this.insertAll = db.transaction((users: NewUser[]) => {
      for (const u of users) this.insertOne(u);
    });
  }

  getUser(username: string): UserRecord | undefined {
    if (this.cache) {
      this.dropCacheIfChangedElsewhere();
      const hit = this.cache().get(username);
      if (hit) return hit;
    }
    const row = this.stmt.getUser.get(username);
    if (!row) return undefined;
    const record = this.toRecord(row);
    this.cache?.().set(username, record);
    return record;
  }

  async listUsers(): Promise<UserRecord[]> {
    return this.stmt.listUsers.all().map((row) => this.toRecord(row));
  }

  async listUsernames(): Promise<string[]> {
    return this.stmt.listUsernames.all();
  }

  async addUser(user: NewUser): Promise<void> {
    this.write([user.username], () => this.insertAll([user]));
  }

  async addUsers(users: NewUser[]): Promise<void> {
    this.write(
      users.map((u) => u.username),
      () => this.insertAll(users),
    );
  }

  async removeUser(username: string): Promise<boolean> {
    return this.write([username], () => this.stmt.removeUser.run(username).changes > 0);
  }

  async setMethod(username: string, method: Method | null): Promise<void> {
    this.write([username], () => requireChange(this.stmt.setMethod.run(method, username).changes, username));
  }

  async setPasswordHash(username: string, hash: string | null): Promise<void> {
    this.write([username], () => requireChange(this.stmt.setPasswordHash.run(hash, username).changes, username));
  }

  async setTotp(username: string, totp: TotpEnrollment | null): Promise<void> {
    this.write([username], () =>
      this.db.transaction(() => {
        if (!this.stmt.userExists.get(username)) throw notFound(username);
        if (totp) this.writeTotp(username, totp);
        else this.stmt.deleteTotp.run(username);
      })(),
    );
  }

  async lockUser(username: string, until: number, reason: string, scope: LockScope = 'all'): Promise<void> {
    this.write([username], () => this.stmt.lockUser.run(username, this.now(), until, reason, scope));
  }

  async unlockUser(username: string): Promise<boolean> {
    return this.write([username], () =>
      this.db.transaction(() => {
        const row = this.stmt.getLock.get(username);
        if (!row) throw notFound(username);
        if (row.locked_until === null) return false;
        this.stmt.unlockUser.run(username);
        return true;
      })(),
    );
  }

  async setPinHashIfUnset(username: string, hash: string): Promise<boolean> {
    return this.write([username], () => this.stmt.setPinHashIfUnset.run(hash, username).changes === 1);
  }

  async setPinHash(username: string, hash: string | null): Promise<void> {
    this.write([username], () => requireChange(this.stmt.setPinHash.run(hash, username).changes, username));
  }

  ping(): void {
    this.db.prepare('SELECT count(*) FROM meta').pluck().get();
  }

  close(): void {
    this.devices.flushLastSeen({ waitForLock: true });
    if (this.db.open) this.db.close();
  }

  /**
   * PRAGMA data_version costs about 2 µs: asked once per turn of the event loop, so a burst of
   * datagrams read together shares one check, and a commit by the CLI is seen by the next turn.
   */
  private dropCacheIfChangedElsewhere(): void {
    if (this.versionChecked) return;
    this.versionChecked = true;
    setImmediate(this.allowVersionCheck);
    const version = this.stmt.dataVersion.get()!;
    if (version !== this.dataVersion) {
      this.dataVersion = version;
      this.cache!().clear();
    }
  }

  /** Runs a write and evicts the users it touched (also when it throws: part of it may have run). */
  private write<T>(usernames: string[], fn: () => T): T {
    try {
      return fn();
    } finally {
      if (this.cache) {
        if (usernames.length > 1000) this.cache().clear();
        else for (const u of usernames) this.cache().delete(u);
      }
    }
  }

  private insertOne(u: NewUser): void {
    try {
      this.stmt.insertUser.run(u.username, u.method ?? null, u.passwordHash ?? null, this.now());
    } catch (err) {
      if (isSqliteError(err, 'SQLITE_CONSTRAINT_PRIMARYKEY')) {
        throw new StoreError('USER_EXISTS', `user ${u.username} already exists`);
      }
      throw err;
    }
    if (u.totp) this.writeTotp(u.username, u.totp);
  }

  private writeTotp(username: string, t: TotpEnrollment): void {
    const sealed = sealSecret(this.key, t.secret, totpContext(username));
    this.stmt.upsertTotp.run(username, sealed, t.algorithm, t.digits, t.period, this.now());
  }

  private toRecord(row: UserRow): UserRecord {
    const [username, method, passwordHash, createdAt, lockedUntil, lockReason, pinHash, lockScope, secretEnc, algorithm, digits, period] = row;
    let totp: TotpEnrollment | null = null;
    if (secretEnc) {
      const opened = openSecret(this.key, secretEnc, totpContext(username));
      if (!opened.ok) {
        throw new StoreError(
          'KEY_MISMATCH',
          `cannot decrypt the TOTP secret of ${username} in ${this.path}: the key file (or store.encryption_key) does not match this database; restore the key it was created with`,
        );
      }
      totp = Object.freeze({
        secret: opened.plaintext,
        algorithm: algorithm as TotpAlgorithm,
        digits: digits as 6 | 8,
        period: period!,
      });
    }
    // Frozen because cached records are shared between callers.
    return Object.freeze({
      username,
      method: method as Method | null,
      passwordHash,
      totp,
      lockedUntil,
      lockReason,
      lockScope: lockedUntil === null ? null : lockScope === 'unfamiliar' ? 'unfamiliar' : 'all',
      pinHash,
      createdAt,
    });
  }
}

function requireChange(changes: number, username: string): void {
  if (changes === 0) throw notFound(username);
}

function notFound(username: string): StoreError {
  return new StoreError('USER_NOT_FOUND', `no user ${username}`);
}

/**
 * Opens (creating if needed) the SQLite file at config.path (relative to the process cwd),
 * migrates it, and checks that `key` is the key its secrets were sealed with.
 */
export function openSqliteStore(config: Config['store'], key: Buffer, options: SqliteStoreOptions = {}): SqliteStore {
  const inMemory = config.path === ':memory:';
  const path = inMemory ? config.path : resolve(config.path);
  if (!inMemory) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Password hashes live here: create the file 0600 (SQLite gives -wal/-shm the same mode). An
    // existing file keeps its mode.
    closeSync(openSync(path, 'a', 0o600));
  }
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
    db.pragma('foreign_keys = ON');
    // With WAL, NORMAL may lose the last commits on power loss, never consistency.
    db.pragma('synchronous = NORMAL');
    migrate(db);
    checkKey(db, key, path);
    return new SqliteStore(db, key, path, options);
  } catch (err) {
    db.close();
    throw err;
  }
}

function checkKey(db: Database, key: Buffer, path: string): void {
  const fingerprint = keyFingerprint(key);
  db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?)").run(fingerprint);
  const stored = db.prepare<[], string>("SELECT value FROM meta WHERE key = 'key_check'").pluck().get();
  if (stored !== fingerprint) {
    throw new StoreError(
      'KEY_MISMATCH',
      `the encryption key does not match the database ${path}: the key file (or store.encryption_key) is not the one this database was created with; restore that key file`,
    );
  }
}
