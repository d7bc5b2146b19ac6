// The npm package as an admin installs it: `npm pack`, then `npm install -g` of the tarball into a temp
// prefix (offline from the npm cache, addons compiled on install), then the installed radius-mfa runs
// --version and serves a real login to radclient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { encodeBase32 } from '../src/mfa/totp-secret.js';
import { radclient } from './helpers/radclient.js';
import { startServe } from './helpers/serve-process.js';
import { codeAt } from './helpers/server.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

test('npm pack + npm install -g gives a working radius-mfa: --version and a real login', { timeout: 360_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-package-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = {
    ...process.env,
    npm_config_prefer_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    // Node headers from the installed Node, not a download (as .ci/run does).
    ...(process.env.npm_config_nodedir || !existsSync('/usr/include/node/node.h') ? {} : { npm_config_nodedir: '/usr' }),
  };
  const packed = await run('npm', ['pack', '--pack-destination', dir], { cwd: ROOT, env, maxBuffer: 16 << 20 });
  const tarball = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
  assert.ok(existsSync(tarball), packed.stdout + packed.stderr);
  const prefix = join(dir, 'prefix');
  await run('npm', ['install', '-g', '--prefix', prefix, '--allow-scripts=radius-mfa-proxy,argon2,better-sqlite3', tarball], { env, maxBuffer: 16 << 20 });
  const bin = join(prefix, 'bin', 'radius-mfa');
  const installed = join(prefix, 'lib', 'node_modules', 'radius-mfa-proxy');
  for (const f of ['dist/cli.js', 'build/Release/udp_batch.node', 'config/config.yaml', 'dictionaries/dictionary.cisco', 'web/app', 'deploy/radius-mfa.service']) {
    assert.ok(existsSync(join(installed, f)), `the installed package has ${f}`);
  }
  assert.ok(!existsSync(join(installed, 'src')) && !existsSync(join(installed, 'test')), 'sources and tests stay out of the package');

  const version = await run(bin, ['--version']);
  assert.match(version.stdout, /^radius-mfa \d+\.\d+\.\d+ \(node v\d+/);

  const secret = `pkg-${randomBytes(6).toString('hex')}`;
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `listen:\n  auth: "127.0.0.1:0"\nclients:\n  - name: nas\n    address: 127.0.0.1\n    secret: "${secret}"\nmfa:\n  reject_delay: 0\nstore:\n  path: "${join(dir, 'data', 'radius-mfa.db')}"\n`);
  const cli = (args: string[], input: string) =>
    new Promise<void>((resolve, reject) => {
      const child = execFile(bin, ['--config', config, ...args], (err, _out, stderr) => (err ? reject(new Error(`${args.join(' ')}: ${stderr}`)) : resolve()));
      child.stdin!.end(input);
    });
  const totp = randomBytes(20);
  await cli(['user', 'add', 'alice', '--password-stdin'], 'pkg-pass\n');
  await cli(['totp', 'import', 'alice', '--secret', encodeBase32(totp)], '');

  const server = await startServe(config, { command: [bin], cwd: dir });
  t.after(() => server.stop());
  assert.match(String(server.listening.version), /^\d+\.\d+\.\d+$/);
  const reply = await radclient({ 'User-Name': 'alice', 'User-Password': `pkg-pass${codeAt(totp, Date.now())}` }, { port: server.authPort, secret, timeout: 5 });
  assert.equal(reply.code, 'Access-Accept', reply.stdout + server.output());
  assert.equal(await server.stop(), 0);
});
