// What every admin command needs: the loaded config, the store, and errors that print as one line.
import { formatIssues, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { canonicalUsername, usernameRules } from '../flow/username.js';
import { resolveEncryptionKey } from '../store/secret-box.js';
import { UserError } from '../shared/errors.js';
import { openStore } from '../store/open-store.js';
import type { Store } from '../store/store.js';

/** An expected failure: printed without a stack trace. exitCode 1 = fix the data or config, 2 = fix the command line. */
export class CliError extends UserError {
  constructor(message: string, exitCode: 1 | 2 = 1) {
    super(exitCode === 2 ? 'USAGE' : 'DATA', message, exitCode);
    this.name = 'CliError';
  }
}

export function loadConfigOrFail(path: string): Config {
  const loaded = loadConfig(path);
  if (!loaded.ok) throw new UserError('CONFIG_INVALID', formatIssues(loaded.issues));
  return loaded.config;
}

/** Opens the store for one command and closes it afterwards. */
export async function withStore<T>(config: Config, fn: (store: Store) => Promise<T>): Promise<T> {
  const key = resolveEncryptionKey(config.store);
  if (key.created) {
    warn(`created the store key file ${key.source} (mode 0600); back it up with the database: TOTP secrets cannot be read without it`);
  }
  const store = await openStore(config.store, key.key, { cacheSize: 0 });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** backup, restore and rotate-key work on the SQLite file; a PostgreSQL store has its own tools. */
export function requireSqlite(config: Config, what: string): void {
  if (config.store.type !== 'sqlite') {
    throw new CliError(`${what} works on a SQLite store; store.type is ${config.store.type}: use the database's own tools (pg_dump / pg_restore, docs/ha.md)`);
  }
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function warn(text: string): void {
  process.stderr.write(`radius-mfa: warning: ${text}\n`);
}

/** RADIUS User-Name is at most 253 octets (RFC 2865 §5.1); control characters would garble logs and tables. */
export function checkUsername(name: string): string | undefined {
  if (name === '') return 'must not be empty';
  if (name !== name.trim()) return 'must not start or end with whitespace';
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'must not contain control characters';
  if (Buffer.byteLength(name, 'utf8') > 253) return 'must be at most 253 bytes (the RADIUS User-Name limit)';
  return undefined;
}

/** A username argument in its canonical form, the one RADIUS and the portal look up (`ALICE` is alice). */
export function userArg(name: string, config: Config): string {
  const problem = checkUsername(name);
  const canonical = problem ? undefined : canonicalUsername(name, usernameRules(config.usernames.realms));
  if (!canonical) throw new CliError(`username ${JSON.stringify(name)} ${problem ?? 'is empty'}`, 2);
  return canonical;
}
