import type pg from 'pg';
import { StoreError, type DeviceRecord, type DeviceStore, type NewDevice } from './store.js';

interface DeviceRow {
  id: string;
  username: string;
  name: string;
  public_key: Buffer;
  push_token: string | null;
  push_token_stale: number;
  created_at: string;
  last_seen_at: string | null;
}

const SELECT_DEVICE = 'SELECT id, username, name, public_key, push_token, push_token_stale, created_at, last_seen_at FROM devices';
/** SQLSTATE foreign_key_violation: the device's or code's user has no row. */
const FOREIGN_KEY_VIOLATION = '23503';

function toDevice(row: DeviceRow): DeviceRecord {
  return {
    id: row.id,
    username: row.username,
    name: row.name,
    publicKey: row.public_key,
    pushToken: row.push_token,
    pushTokenStale: row.push_token_stale === 1,
    createdAt: Number(row.created_at),
    lastSeenAt: row.last_seen_at === null ? null : Number(row.last_seen_at),
  };
}

function userMissing(err: unknown, username: string): unknown {
  return (err as { code?: string }).code === FOREIGN_KEY_VIOLATION ? new StoreError('USER_NOT_FOUND', `no user ${username}`) : err;
}

/**
 * Devices and activation codes in PostgreSQL. Last-seen times are written at once: unlike SQLite's
 * WAL checkpoints, an UPDATE here costs the answering request no fsync of its own to wait for.
 */
export class PostgresDevices implements DeviceStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
  ) {}

  async addActivation(username: string, codeHash: Buffer, expiresAt: number, withTotp: boolean): Promise<void> {
    try {
      await this.pool.query('DELETE FROM activation_codes WHERE expires_at <= $1', [this.now()]);
      await this.pool.query('INSERT INTO activation_codes (code_hash, username, expires_at, with_totp, created_at) VALUES ($1, $2, $3, $4, $5)', [
        codeHash,
        username,
        expiresAt,
        withTotp ? 1 : 0,
        this.now(),
      ]);
    } catch (err) {
      throw userMissing(err, username);
    }
  }

  async consumeActivation(codeHash: Buffer, now: number): Promise<{ username: string; withTotp: boolean } | undefined> {
    // DELETE ... RETURNING: single use even when two nodes take the same code at once.
    const r = await this.pool.query<{ username: string; expires_at: string; with_totp: number }>(
      'DELETE FROM activation_codes WHERE code_hash = $1 RETURNING username, expires_at, with_totp',
      [codeHash],
    );
    const row = r.rows[0];
    if (!row || Number(row.expires_at) <= now) return undefined;
    return { username: row.username, withTotp: row.with_totp === 1 };
  }

  async add(d: NewDevice): Promise<void> {
    try {
      await this.pool.query('INSERT INTO devices (id, username, name, public_key, token_hash, push_token, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
        d.id,
        d.username,
        d.name,
        d.publicKey,
        d.tokenHash,
        d.pushToken,
        this.now(),
      ]);
    } catch (err) {
      throw userMissing(err, d.username);
    }
  }

  async byTokenHash(tokenHash: Buffer): Promise<DeviceRecord | undefined> {
    const r = await this.pool.query<DeviceRow>({ name: 'device-by-token', text: `${SELECT_DEVICE} WHERE token_hash = $1`, values: [tokenHash] });
    return r.rows[0] ? toDevice(r.rows[0]) : undefined;
  }

  async list(username?: string): Promise<DeviceRecord[]> {
    const r =
      username === undefined
        ? await this.pool.query<DeviceRow>(`${SELECT_DEVICE} ORDER BY username, created_at`)
        : await this.pool.query<DeviceRow>(`${SELECT_DEVICE} WHERE username = $1 ORDER BY created_at`, [username]);
    return r.rows.map(toDevice);
  }

  async remove(id: string): Promise<boolean> {
    return ((await this.pool.query('DELETE FROM devices WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }

  async setPushToken(id: string, pushToken: string | null): Promise<void> {
    await this.pool.query('UPDATE devices SET push_token = $1, push_token_stale = 0 WHERE id = $2', [pushToken, id]);
  }

  async markPushTokenStale(id: string): Promise<void> {
    await this.pool.query('UPDATE devices SET push_token_stale = 1 WHERE id = $1', [id]);
  }

  async touch(id: string, now: number): Promise<void> {
    await this.pool.query('UPDATE devices SET last_seen_at = $1 WHERE id = $2', [now, id]);
  }
}
