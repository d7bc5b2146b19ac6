import type { Database } from './sqlite-driver.js';
import { StoreError, type DeviceRecord, type DeviceStore, type NewDevice } from './store.js';

type DeviceRow = [
  id: string,
  username: string,
  name: string,
  public_key: Uint8Array,
  push_token: string | null,
  push_token_stale: number,
  created_at: number,
  last_seen_at: number | null,
];

const SELECT_DEVICE = 'SELECT id, username, name, public_key, push_token, push_token_stale, created_at, last_seen_at FROM devices';

/**
 * How long a device's last-seen time waits before it is written. Writes are batched: a commit per
 * answer would put a write (and, every ~1000 commits, a WAL checkpoint with its fsyncs, 13-22 ms
 * measured) on the path of the phone's answer to a held request.
 */
export const LAST_SEEN_FLUSH_MS = 1000;

/** Devices and their one-time activation codes, in the same SQLite file as the users. */
export class SqliteDevices implements DeviceStore {
  private readonly stmt;
  private readonly writeSeen;
  /** Last-seen times not written yet: reads see them at once. */
  private readonly seen = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Database,
    private readonly now: () => number,
  ) {
    this.stmt = {
      addActivation: db.prepare<[Buffer, string, number, number, number]>(
        'INSERT INTO activation_codes (code_hash, username, expires_at, with_totp, created_at) VALUES (?, ?, ?, ?, ?)',
      ),
      // DELETE ... RETURNING makes the code single-use even with two nodes racing on one file.
      takeActivation: db.prepare<[Buffer], { username: string; expires_at: number; with_totp: number }>(
        'DELETE FROM activation_codes WHERE code_hash = ? RETURNING username, expires_at, with_totp',
      ),
      dropExpired: db.prepare<[number]>('DELETE FROM activation_codes WHERE expires_at <= ?'),
      add: db.prepare<[string, string, string, Buffer, Buffer, string | null, number]>(
        'INSERT INTO devices (id, username, name, public_key, token_hash, push_token, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      byTokenHash: db.prepare<[Buffer], DeviceRow>(`${SELECT_DEVICE} WHERE token_hash = ?`).raw(),
      listAll: db.prepare<[], DeviceRow>(`${SELECT_DEVICE} ORDER BY username, created_at`).raw(),
      listFor: db.prepare<[string], DeviceRow>(`${SELECT_DEVICE} WHERE username = ? ORDER BY created_at`).raw(),
      remove: db.prepare<[string]>('DELETE FROM devices WHERE id = ?'),
      setPushToken: db.prepare<[string | null, string]>('UPDATE devices SET push_token = ?, push_token_stale = 0 WHERE id = ?'),
      markStale: db.prepare<[string]>('UPDATE devices SET push_token_stale = 1 WHERE id = ?'),
      touch: db.prepare<[number, string]>('UPDATE devices SET last_seen_at = ? WHERE id = ?'),
    };
    this.writeSeen = db.transaction((batch: [string, number][]) => {
      for (const [id, at] of batch) this.stmt.touch.run(at, id);
    });
  }

  private toDevice(row: DeviceRow): DeviceRecord {
    const [id, username, name, publicKey, pushToken, stale, createdAt, lastSeenAt] = row;
    return { id, username, name, publicKey: Buffer.from(publicKey), pushToken, pushTokenStale: stale === 1, createdAt, lastSeenAt: this.seen.get(id) ?? lastSeenAt };
  }

  async addActivation(username: string, codeHash: Buffer, expiresAt: number, withTotp: boolean): Promise<void> {
    try {
      this.stmt.dropExpired.run(this.now());
      this.stmt.addActivation.run(codeHash, username, expiresAt, withTotp ? 1 : 0, this.now());
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw new StoreError('USER_NOT_FOUND', `no user ${username}`);
      throw err;
    }
  }

  async consumeActivation(codeHash: Buffer, now: number): Promise<{ username: string; withTotp: boolean } | undefined> {
    const row = this.stmt.takeActivation.get(codeHash);
    if (!row || row.expires_at <= now) return undefined;
    return { username: row.username, withTotp: row.with_totp === 1 };
  }

  async add(d: NewDevice): Promise<void> {
    try {
      this.stmt.add.run(d.id, d.username, d.name, d.publicKey, d.tokenHash, d.pushToken, this.now());
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw new StoreError('USER_NOT_FOUND', `no user ${d.username}`);
      throw err;
    }
  }

  async byTokenHash(tokenHash: Buffer): Promise<DeviceRecord | undefined> {
    const row = this.stmt.byTokenHash.get(tokenHash);
    return row ? this.toDevice(row) : undefined;
  }

  async list(username?: string): Promise<DeviceRecord[]> {
    return (username === undefined ? this.stmt.listAll.all() : this.stmt.listFor.all(username)).map((row) => this.toDevice(row));
  }

  async remove(id: string): Promise<boolean> {
    this.seen.delete(id);
    return this.stmt.remove.run(id).changes > 0;
  }

  async setPushToken(id: string, pushToken: string | null): Promise<void> {
    this.stmt.setPushToken.run(pushToken, id);
  }

  async markPushTokenStale(id: string): Promise<void> {
    this.stmt.markStale.run(id);
  }

  async touch(id: string, now: number): Promise<void> {
    this.seen.set(id, now);
    this.flushTimer ??= setTimeout(() => this.flushLastSeen(), LAST_SEEN_FLUSH_MS).unref();
  }

  /**
   * Writes the waiting last-seen times in one transaction. Unless closing, it does not wait for a lock
   * another process holds (a CLI import): that would stall every request on this event loop, for mere
   * timestamps. If the write fails they wait for the next try.
   */
  flushLastSeen({ waitForLock = false } = {}): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.seen.size === 0 || !this.db.open) return;
    const batch = [...this.seen];
    this.seen.clear();
    const busyTimeout = this.db.pragma('busy_timeout', { simple: true }) as number;
    if (!waitForLock) this.db.pragma('busy_timeout = 0');
    try {
      this.writeSeen(batch);
    } catch {
      // Busy or out of disk: keep what no newer touch replaced and try again later.
      for (const [id, at] of batch) if (!this.seen.has(id)) this.seen.set(id, at);
      this.flushTimer = setTimeout(() => this.flushLastSeen(), LAST_SEEN_FLUSH_MS).unref();
    } finally {
      this.db.pragma(`busy_timeout = ${busyTimeout}`);
    }
  }
}
