// Decrypted user records of the PostgreSQL store, kept while PostgreSQL says they are unchanged.
// Every node writes the same tables, so a record may be kept only while this node hears of every
// change: the trigger of migration step 4 NOTIFYs the username on each write of users and totp
// (whoever writes: a node, the CLI, `store copy`, psql), and one dedicated connection per node
// LISTENs. Without that connection (not yet up, or known lost) nothing is kept or served from here; a
// silently cut one is found by the heartbeat or by the first failed store query (docs/ha.md).
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import type { UserRecord } from './store.js';

/** The channel the trigger notifies; the payload is a username, '' for "any user" (TRUNCATE). */
export const USER_CHANGES_CHANNEL = 'radius_mfa_user_changed';

export interface PostgresUserCacheOptions {
  /** Records kept (LRU). */
  size: number;
  /** A new, unconnected client with the pool's settings, for LISTEN. */
  newClient: () => pg.Client;
  /** The listening connection failed (reported once per loss, not per reconnect attempt). */
  onError?: (err: Error) => void;
  /** First wait before reconnecting; doubles up to 2 s. Default 100 ms. */
  retryMs?: number;
}

const MAX_RETRY_MS = 2000;
/** A query on the listening connection this often, so a silently dead connection is noticed (docs/ha.md). */
const HEARTBEAT_MS = 5000;

export class PostgresUserCache {
  /** Made on the first record kept (lru-cache preallocates for `size`: start-up time). */
  private records: LRUCache<string, UserRecord> | undefined;
  /**
   * Bumped by every change heard or made here and whenever listening starts or stops: a row read
   * before a bump may be older than what the bump announced, so it is returned but not kept.
   */
  private generation = 0;
  /** The connection that is LISTENing; undefined = not listening, so nothing is kept or served. */
  private listener: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The connection attempt under way, awaited by close(). */
  private attempt: Promise<void> | undefined;
  private closed = false;
  private retryMs: number;

  constructor(private readonly options: PostgresUserCacheOptions) {
    this.retryMs = options.retryMs ?? 100;
  }

  /** Whether records are being kept (the LISTEN connection is up). */
  get listening(): boolean {
    return this.listener !== undefined;
  }

  get(username: string): UserRecord | undefined {
    return this.listener ? this.records?.get(username) : undefined;
  }

  /** Taken before reading a row: pass it to put(), which keeps the record only if nothing changed in between. */
  ticket(): number {
    return this.listener ? this.generation : -1;
  }

  put(username: string, record: UserRecord, ticket: number): void {
    if (this.listener && ticket === this.generation) (this.records ??= new LRUCache({ max: this.options.size })).set(username, record);
  }

  /** This node wrote these users: the next read here must see it, before the notification comes back. */
  forget(usernames: readonly string[]): void {
    this.generation++;
    if (usernames.length > 1000) this.records?.clear();
    else for (const u of usernames) this.records?.delete(u);
  }

  /**
   * A query on the pool failed: PostgreSQL may be cut off while the listening connection has not
   * noticed yet (up to a heartbeat). Stop serving from here until listening is shown to work again.
   */
  suspect(): void {
    this.listener?.emit('error', new Error('a store query failed: listening again before serving cached records'));
  }

  /** Listens; resolves after the first attempt (a failed one is retried in the background). */
  async start(): Promise<void> {
    await (this.attempt = this.connect());
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const c = this.listener;
    this.stopListening();
    await Promise.all([this.attempt, c?.end().catch(() => {})]);
  }

  private changed(username: string): void {
    this.generation++;
    if (username === '') this.records?.clear();
    else this.records?.delete(username);
  }

  private stopListening(): void {
    this.listener = undefined;
    this.generation++;
    this.records?.clear();
  }

  private async connect(): Promise<void> {
    const c = this.options.newClient();
    let dropped = false;
    const drop = (err: Error) => {
      if (dropped) return;
      dropped = true;
      if (this.listener === c) {
        this.stopListening();
        this.options.onError?.(err);
      }
      clearTimeout(this.timer);
      c.end().catch(() => {});
      if (!this.closed) this.retryLater();
    };
    c.on('error', drop);
    c.on('end', () => drop(new Error('the LISTEN connection was closed')));
    c.on('notification', (n) => {
      if (n.channel === USER_CHANGES_CHANNEL) this.changed(n.payload ?? '');
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${USER_CHANGES_CHANNEL}`);
    } catch (err) {
      drop(err as Error);
      return;
    }
    if (this.closed || dropped) {
      await c.end().catch(() => {});
      return;
    }
    // Rows read before this point may predate changes nobody told us about: the bump keeps them out.
    this.generation++;
    this.records?.clear();
    this.listener = c;
    this.retryMs = this.options.retryMs ?? 100;
    this.heartbeat(c, drop);
  }

  /**
   * A round trip on the listening connection. PostgreSQL sends a notification before the answer to a
   * later query on the same connection, so once this resolves every change committed before the call
   * has been handled here. Rejects when not listening.
   */
  async check(): Promise<void> {
    if (!this.listener) throw new Error('not listening for changes');
    await this.listener.query('SELECT 1');
  }

  private heartbeat(c: pg.Client, drop: (err: Error) => void): void {
    this.timer = setTimeout(() => {
      if (this.listener !== c) return;
      this.check().then(
        () => {
          if (this.listener === c) this.heartbeat(c, drop);
        },
        (err: Error) => drop(err),
      );
    }, HEARTBEAT_MS);
    this.timer.unref();
  }

  private retryLater(): void {
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    this.timer = setTimeout(() => (this.attempt = this.connect()), wait);
    this.timer.unref();
  }
}
