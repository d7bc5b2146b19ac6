// What an admin sees of a running server: --version, the start-up line (version, listeners, first factor,
// store, state), and `radius-mfa test --log` printing the decision's audit line from the server's log file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveEncryptionKey } from '../src/store/secret-box.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { runCli } from './helpers/cli.js';
import { startServe } from './helpers/serve-process.js';
import { enrollTotp } from './helpers/server.js';

const PKG = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

test('--version prints the package version and the Node.js it runs on', async () => {
  const r = await runCli('unused.yaml', tmpdir(), ['--version']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), `radius-mfa ${PKG.version} (node ${process.version})`);
});

test('the start-up line names version, listeners, first factor, store and state; a stored non-canonical username is reported; test --log prints the audit line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-startup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = `s-${randomBytes(6).toString('hex')}`;
  const storeConfig = { type: 'sqlite' as const, path: join(dir, 'users.db') };
  const store = openSqliteStore(storeConfig, resolveEncryptionKey(storeConfig).key);
  const alice = await enrollTotp(store, 'alice', { password: 'pw-alice' });
  await store.addUser({ username: 'Bob' }); // stored before canonical names: never matched, so serve says so
  store.close();
  const config = join(dir, 'config.yaml');
  const base = `clients:\n  - name: nas\n    address: 127.0.0.1\n    secret: "${secret}"\nmfa:\n  reject_delay: 0\nmetrics:\n  listen: "127.0.0.1:0"\nstore:\n  path: "${storeConfig.path}"\n`;
  writeFileSync(config, `listen:\n  auth: "127.0.0.1:0"\n${base}`);
  const logFile = join(dir, 'server.log');
  const server = await startServe(config, { logFile });
  t.after(() => server.stop());
  const stray = server.lines.find((line) => String(line.msg).startsWith('stored usernames not in canonical form'));
  assert.deepEqual([stray?.users, stray?.count], [['Bob'], 1], server.output());
  const l = server.listening;
  assert.equal(l.version, PKG.version);
  assert.equal(l.node, process.version);
  assert.deepEqual((l.listen as { role: string }[]).map((b) => b.role).sort(), ['auth', 'metrics']);
  assert.equal(l.first_factor, 'local');
  assert.deepEqual(l.store, { type: 'sqlite', path: storeConfig.path, key_from: `${storeConfig.path}.key` });
  assert.equal(l.state, 'memory');
  assert.equal((await fetch(`http://127.0.0.1:${server.metricsPort}/healthz`)).status, 200);
  assert.equal((await fetch(`http://127.0.0.1:${server.metricsPort}/readyz`)).status, 200);

  // The CLI reads its target from a config naming the bound port.
  const cliConfig = join(dir, 'cli.yaml');
  writeFileSync(cliConfig, `listen:\n  auth: "0.0.0.0:${server.authPort}"\n${base}`);
  const r = await runCli(cliConfig, dir, ['test', 'alice', '--log', logFile], `pw-alice${alice.codeAt(Date.now())}\n`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const audit = /^audit: (.*)$/m.exec(r.stdout)?.[1];
  assert.ok(audit, r.stdout);
  const record = JSON.parse(audit) as Record<string, unknown>;
  assert.equal(record.user, 'alice');
  assert.equal(record.result, 'accept');
  assert.equal(record.reason, 'second_factor_ok');
  assert.equal(await server.stop(), 0);
});
