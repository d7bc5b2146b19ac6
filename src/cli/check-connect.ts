// `radius-mfa check-config --connect`: one line per backend, "ok" or the cause and the fix (Duo's
// authproxy_connectivity_tool, FreeRADIUS -X). Exit 1 when any line failed.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Database } from '../store/sqlite-driver.js';
import type { Config } from '../config/schema.js';
import { backendChecks, runChecks, type CheckOutcome } from '../health/backend-checks.js';
import { keyFingerprint, resolveEncryptionKey } from '../store/secret-box.js';
import { print } from './context.js';
import pg from 'pg';
import { Redis } from 'ioredis';
import { describePostgresUrl, poolConfig } from '../store/postgres.js';
import { connectRedis, describeRedisUrl, redisOptions } from '../state/redis.js';

/** The shared PostgreSQL store, read only (no migration runs here): reachable, and sealed with the configured key. */
export async function checkPostgresStore(config: Config): Promise<CheckOutcome> {
  const where = describePostgresUrl(config.store.url!);
  let key: Buffer;
  try {
    key = resolveEncryptionKey(config.store).key;
  } catch (err) {
    return { ok: false, cause: (err as Error).message, fix: 'set store.encryption_key to the key every node uses' };
  }
  const client = new pg.Client(poolConfig(config.store, 5000));
  client.on('error', () => {});
  try {
    await client.connect();
    const tables = (await client.query<{ t: string | null }>("SELECT to_regclass('meta')::text AS t")).rows[0]?.t;
    if (!tables) return { ok: true, detail: `${where}: reachable, empty: the schema is created at first start` };
    const stored = (await client.query<{ value: string }>("SELECT value FROM meta WHERE key = 'key_check'")).rows[0]?.value;
    if (stored !== undefined && stored !== keyFingerprint(key)) {
      return { ok: false, cause: `the encryption key does not match ${where}`, fix: 'set store.encryption_key to the key the other nodes (and the store) use' };
    }
    const users = Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM users')).rows[0]?.n ?? 0);
    return { ok: true, detail: `${where}: ${users} user${users === 1 ? '' : 's'}, key matches` };
  } catch (err) {
    return { ok: false, cause: `cannot reach ${where}: ${(err as Error).message}`, fix: 'check store.url, the password, pg_hba.conf and the network path to the database' };
  } finally {
    await client.end().catch(() => {});
  }
}

/** Redis answers PING (through the sentinels when configured). */
export async function checkRedis(config: Config): Promise<CheckOutcome> {
  const where = describeRedisUrl(config.state.url!);
  const redis = new Redis({ ...redisOptions(config.state), retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await connectRedis(redis);
    await redis.ping();
    return { ok: true, detail: `${where}: answers PING` };
  } catch (err) {
    return { ok: false, cause: `cannot reach ${where}: ${(err as Error).message}`, fix: 'check state.url (password, TLS), state.sentinel and the network path to Redis' };
  } finally {
    redis.disconnect();
  }
}

/** The store file opened read-only: it exists (or will be created), and the configured key is the one it was sealed with. */
export function checkStoreFile(config: Config): CheckOutcome {
  const path = resolve(config.store.path);
  if (config.store.path === ':memory:') return { ok: true, detail: 'in memory (nothing survives a restart)' };
  if (!existsSync(path)) return { ok: true, detail: `${path} does not exist yet: it is created on first start` };
  let key: Buffer;
  try {
    key = resolveEncryptionKey(config.store).key;
  } catch (err) {
    return { ok: false, cause: (err as Error).message, fix: 'restore the key file from the backup taken with this database (radius-mfa restore)' };
  }
  let db: Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const stored = db.prepare<[], string>("SELECT value FROM meta WHERE key = 'key_check'").pluck().get();
    const users = db.prepare<[], number>('SELECT count(*) FROM users').pluck().get() ?? 0;
    if (stored !== undefined && stored !== keyFingerprint(key)) {
      return { ok: false, cause: `the encryption key does not match ${path}`, fix: 'point store.key_file (or store.encryption_key) at the key this database was created with' };
    }
    return { ok: true, detail: `${path}: ${users} user${users === 1 ? '' : 's'}, key matches` };
  } catch (err) {
    return { ok: false, cause: `cannot read ${path}: ${(err as Error).message}`, fix: 'check store.path and the file permissions (the service user must read and write it)' };
  } finally {
    db?.close();
  }
}

function line(name: string, outcome: CheckOutcome): string {
  return outcome.ok ? `ok    ${name}: ${outcome.detail}` : `FAIL  ${name}: ${outcome.cause}; fix: ${outcome.fix}`;
}

/** Prints one line per backend; true when all are ok. */
export async function checkConnections(config: Config): Promise<boolean> {
  let allOk = true;
  const store = config.store.type === 'postgres' ? await checkPostgresStore(config) : checkStoreFile(config);
  print(line(`store ${config.store.type}`, store));
  allOk &&= store.ok;
  const results = await runChecks(backendChecks(config));
  for (const { check, outcome } of results) {
    print(line(check.name, outcome));
    allOk &&= outcome.ok;
  }
  if (config.state.type === 'memory') print('ok    state memory: nothing to connect to');
  else {
    const redis = await checkRedis(config);
    print(line('state redis', redis));
    allOk &&= redis.ok;
  }
  return allOk;
}
