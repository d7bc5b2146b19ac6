// One door to the configured store, for the server and every CLI command. PostgreSQL's client (pg) is loaded
// only when the config names it: it is a tenth of the start-up time otherwise.
import type { Config } from '../config/schema.js';
import { openSqliteStore } from './sqlite.js';
import type { Store } from './store.js';

export interface OpenStoreOptions {
  now?: () => number;
  /** Decrypted user records kept (0 = none; PostgreSQL then opens no LISTEN connection either). */
  cacheSize?: number;
  /** PostgreSQL: errors of idle connections, reported instead of thrown. */
  onIdleError?: (err: Error) => void;
}

/** Opens store.type's store, migrated, with `key` checked against what it holds. */
export async function openStore(config: Config['store'], key: Buffer, options: OpenStoreOptions = {}): Promise<Store> {
  if (config.type === 'postgres') {
    const { openPostgresStore } = await import('./postgres.js');
    return openPostgresStore(config, key, { now: options.now, onIdleError: options.onIdleError, cacheSize: options.cacheSize });
  }
  return openSqliteStore(config, key, { now: options.now, cacheSize: options.cacheSize });
}
