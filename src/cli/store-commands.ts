// `backup FILE`, `restore FILE`, `store rotate-key`: the store's life beyond one server run.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { BackupError, readBackup, restoreBackup, writeBackup } from '../store/backup.js';
import { CopyError, copySqliteToPostgres } from '../store/copy.js';
import { StoreInUseError } from '../store/exclusive.js';
import { rotateStoreKey, RotationError } from '../store/key-rotation.js';
import { parseHexKey, resolveEncryptionKey } from '../store/secret-box.js';
import { CliError, loadConfigOrFail, print, requireSqlite } from './context.js';
import { stdinLines } from './prompt.js';

const MIN_PASSPHRASE = 12;

/** Expected failures of these commands become one-line CLI errors (their messages name the fix). */
async function expected<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof BackupError || err instanceof RotationError || err instanceof StoreInUseError || err instanceof CopyError) throw new CliError(err.message);
    throw err;
  }
}

async function askPassphrase(confirm: boolean): Promise<string> {
  const input = stdinLines();
  try {
    const first = await input.ask('Backup passphrase: ', 'passphrase');
    if (confirm && process.stdin.isTTY && (await input.ask('Again: ', 'passphrase')) !== first) throw new CliError('the two passphrases differ');
    return first;
  } finally {
    input.close();
  }
}

export function registerStoreCommands(program: Command, configPath: (cmd: Command) => string): void {
  program
    .command('backup')
    .description('write an encrypted, consistent copy of the store and its key to FILE (works while the server runs); the passphrase is read from the terminal or stdin')
    .argument('<file>', 'backup file to create (never overwritten)')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      requireSqlite(config, 'backup');
      const passphrase = await askPassphrase(true);
      if (passphrase.length < MIN_PASSPHRASE) throw new CliError(`the passphrase must have at least ${MIN_PASSPHRASE} characters: it is all that protects the key inside the backup`);
      const key = resolveEncryptionKey(config.store).key;
      const r = await expected(() => writeBackup(resolve(config.store.path), key, passphrase, resolve(file)));
      print(`wrote ${resolve(file)}: ${r.users} user${r.users === 1 ? '' : 's'}, ${r.bytes} bytes, store key included (encrypted with the passphrase)`);
    });

  program
    .command('restore')
    .description('replace the store and its key file with a backup; refuses while a server (or any command) has the store open')
    .argument('<file>', 'backup file written by radius-mfa backup')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      requireSqlite(config, 'restore');
      if (config.store.path === ':memory:') throw new CliError('store.path is :memory:: there is no store file to restore into');
      const passphrase = await askPassphrase(false);
      const backup = await expected(() => readBackup(resolve(file), passphrase));
      const storePath = resolve(config.store.path);
      const configured = config.store.encryption_key !== undefined ? parseHexKey(config.store.encryption_key) : undefined;
      const { kept } = await expected(() =>
        restoreBackup(backup, { storePath, keyFile: configured ? undefined : resolve(config.store.key_file ?? `${config.store.path}.key`), configuredKey: configured }),
      );
      print(`restored ${storePath} from ${resolve(file)} (taken ${backup.created}, ${backup.users} user${backup.users === 1 ? '' : 's'})`);
      for (const k of kept) print(`kept the replaced file as ${k}: remove it once the restored store works`);
    });

  const store = program.command('store').description('store maintenance');
  store
    .command('copy')
    .description('copy the SQLite store (users, TOTP enrollments, devices, activation codes, password and PIN hashes, locks) into PostgreSQL in one transaction; refuses a target that holds data unless --force')
    .requiredOption('--to <url>', 'target PostgreSQL URL, e.g. postgres://radius_mfa:PASSWORD@db.example.com/radius_mfa (sslmode=verify-full&sslrootcert=FILE for TLS)')
    .option('--force', "replace the target's users, devices and activation codes with this store's (in the same transaction)")
    .action(async (opts: { to: string; force?: boolean }, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      requireSqlite(config, 'store copy');
      if (!/^postgres(ql)?:\/\//.test(opts.to)) throw new CliError('--to must be a postgres:// URL', 2);
      if (config.store.path === ':memory:') throw new CliError('store.path is :memory:: there is no store file to copy');
      const key = resolveEncryptionKey(config.store);
      const from = resolve(config.store.path);
      const r = await expected(() => copySqliteToPostgres(from, key.key, { url: opts.to }, { force: opts.force }));
      const n = (count: number, what: string) => `${count} ${what}${count === 1 ? '' : 's'}`;
      if (r.replaced > 0) print(`replaced ${n(r.replaced, 'row')} that ${r.target} held (--force)`);
      print(
        `copied ${n(r.users, 'user')} (${r.passwordHashes} with a password hash, ${r.pinHashes} with a PIN, ${r.locked} locked), ${n(r.totp, 'TOTP enrollment')}, ${n(r.devices, 'device')}, ${n(r.activationCodes, 'activation code')} from ${from} to ${r.target}`,
      );
      print(`every node now needs store: { type: postgres, url: ..., encryption_key: ... } with the key from ${key.source} (docs/ha.md)`);
    });
  store
    .command('rotate-key')
    .description('re-encrypt every TOTP secret under a new key in one transaction; the old key file is kept as *.retired-<time>')
    .action(async (_opts: unknown, cmd: Command) => {
      const config = loadConfigOrFail(configPath(cmd));
      requireSqlite(config, 'store rotate-key');
      const r = await expected(() => rotateStoreKey(config.store, { onStart: (n) => process.stderr.write(`re-encrypting ${n} secret${n === 1 ? '' : 's'}\n`) }));
      print(`${r.resumed ? 'finished an interrupted rotation: ' : ''}${r.secrets} secret${r.secrets === 1 ? '' : 's'} now under the new key in ${r.keyFile}`);
      print(`the old key is kept as ${r.retiredKeyFile}: old backups need it; remove it when they are gone`);
    });
}
