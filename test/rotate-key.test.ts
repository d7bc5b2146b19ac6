// store rotate-key: all secrets re-sealed in one transaction; an interruption at any point loses nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveEncryptionKey } from '../src/store/secret-box.js';
import { rotateStoreKey } from '../src/store/key-rotation.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { runCli } from './helpers/cli.js';
import { startServe } from './helpers/serve-process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A store of `n` TOTP users with known secrets, its config file and the secrets to compare against. */
async function seeded(t: { after(fn: () => void): void }, n: number) {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-rotate-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = { type: 'sqlite' as const, path: join(dir, 'users.db') };
  const s = openSqliteStore(store, resolveEncryptionKey(store).key, { cacheSize: 0 });
  const secrets = new Map<string, Buffer>();
  const users = Array.from({ length: n }, (_, i) => {
    const secret = Buffer.alloc(20, i % 251);
    secret.writeUInt32BE(i, 0);
    secrets.set(`user${i}`, secret);
    return { username: `user${i}`, totp: { secret, algorithm: 'SHA1' as const, digits: 6 as const, period: 30 } };
  });
  await s.addUsers(users);
  s.close();
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `listen:\n  auth: "127.0.0.1:0"\nclients:\n  - name: nas\n    address: 127.0.0.1\n    secret: s\nstore:\n  path: "${store.path}"\n`);
  return { dir, store, config, secrets, keyFile: `${store.path}.key` };
}

/** Every secret decrypts with the key file as it is now, and equals what was enrolled. */
async function assertAllReadable(store: { type: 'sqlite'; path: string }, secrets: Map<string, Buffer>) {
  const s = openSqliteStore(store, resolveEncryptionKey(store).key, { cacheSize: 0 });
  try {
    const users = await s.listUsers();
    assert.equal(users.length, secrets.size);
    for (const u of users) assert.ok(u.totp?.secret.equals(secrets.get(u.username)!), u.username);
  } finally {
    s.close();
  }
}

test('rotate-key: re-seals every secret, keeps the old key file as .retired, and the store opens with the new key', async (t) => {
  const { dir, store, config, secrets, keyFile } = await seeded(t, 20);
  const before = readFileSync(keyFile, 'utf8');
  const r = await runCli(config, dir, ['store', 'rotate-key']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /re-encrypting 20 secrets/);
  assert.match(r.stdout, /^20 secrets now under the new key in .*users\.db\.key$/m);
  assert.match(r.stdout, /the old key is kept as .*users\.db\.key\.retired-\S+: old backups need it; remove it when they are gone/);
  assert.notEqual(readFileSync(keyFile, 'utf8'), before);
  const retired = readdirSync(dir).filter((f) => f.startsWith('users.db.key.retired-'));
  assert.equal(retired.length, 1);
  assert.equal(readFileSync(join(dir, retired[0]!), 'utf8'), before);
  await assertAllReadable(store, secrets);
});

test('rotate-key: a failure in the middle of the transaction changes nothing', async (t) => {
  const { store, secrets, keyFile } = await seeded(t, 50);
  const before = readFileSync(keyFile, 'utf8');
  assert.throws(
    () => rotateStoreKey(store, { afterRow: (i) => { if (i === 25) throw new Error('injected failure'); } }),
    /injected failure/,
  );
  assert.equal(readFileSync(keyFile, 'utf8'), before);
  assert.ok(!existsSync(`${keyFile}.new`), 'the discarded new key is not left behind');
  await assertAllReadable(store, secrets);
});

test('rotate-key: stopped after the commit but before the key files are swapped, the next run finishes it', async (t) => {
  const { store, secrets, keyFile } = await seeded(t, 10);
  const now = new Date('2026-01-02T03:04:05.000Z');
  // The retired name is taken, so the swap fails after the transaction has committed.
  mkdirSync(`${keyFile}.retired-2026-01-02T03-04-05-000Z`);
  assert.throws(() => rotateStoreKey(store, { now }), /EEXIST/);
  assert.ok(existsSync(`${keyFile}.new`));
  const resumed = rotateStoreKey(store);
  assert.equal(resumed.resumed, true);
  assert.ok(!existsSync(`${keyFile}.new`));
  await assertAllReadable(store, secrets);
});

test('rotate-key: killed with SIGKILL mid-run, nothing is lost and a second run completes', async (t) => {
  const { dir, store, config, secrets } = await seeded(t, 20_000);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--config', config, 'store', 'rotate-key'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
  // Killed as soon as it says it is re-encrypting: inside (or just after) the transaction.
  await new Promise<void>((resolve) => child.stderr!.on('data', (d: Buffer) => d.toString().includes('re-encrypting') && resolve()));
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  const again = await runCli(config, dir, ['store', 'rotate-key']);
  assert.equal(again.code, 0, again.stderr);
  await assertAllReadable(store, secrets);
});

test('rotate-key: refused while a server has the store open, and with store.encryption_key in the config', async (t) => {
  const { dir, config, store, secrets } = await seeded(t, 3);
  const server = await startServe(config);
  t.after(() => server.stop());
  const busy = await runCli(config, dir, ['store', 'rotate-key']);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /users\.db is open in another process .*: stop it first \(systemctl stop radius-mfa\), then rotate the key/);
  assert.equal(await server.stop(), 0);
  await assertAllReadable(store, secrets);
  const inline = join(dir, 'inline.yaml');
  writeFileSync(inline, `${readFileSync(config, 'utf8')}  encryption_key: "${'ab'.repeat(32)}"\n`);
  const refused = await runCli(inline, dir, ['store', 'rotate-key']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /store\.encryption_key is set in the config: rotation writes a key file; move the key to a file/);
});
