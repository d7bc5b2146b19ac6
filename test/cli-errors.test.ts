// Config and usage problems through the real CLI: one message that names what to change (key, file,
// port), the catalog's exit status, and never "unexpected error" or a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliRun } from './helpers/cli.js';

const KEY = 'ab'.repeat(32);

function setup(t: { after(fn: () => void): void }, extra: string, auth = '127.0.0.1:0'): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-cli-errors-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    `listen:
  auth: "${auth}"
clients:
  - name: vpn
    address: 127.0.0.1
    secret: a-long-random-shared-secret-0123
    require_message_authenticator: true
store:
  path: ":memory:"
  encryption_key: "${KEY}"
${extra}`,
  );
  return { dir, config };
}

function assertNoStack(run: CliRun): void {
  assert.doesNotMatch(run.stderr, /unexpected error/);
  assert.doesNotMatch(run.stderr, /^\s+at /m, run.stderr);
}

test('http.listen on a public address without TLS: check-config and serve both refuse it at its line, naming http.tls and http.insecure', async (t) => {
  const { dir, config } = setup(t, 'http:\n  listen: "0.0.0.0:0"\n');
  const check = await runCli(config, dir, ['check-config']);
  assert.equal(check.code, 1, check.stderr);
  assert.match(check.stderr, /config\.yaml:12:11 http\.listen: 0\.0\.0\.0 is not a loopback address.*http\.tls \{cert, key\}.*http\.insecure: true/);
  assertNoStack(check);
  const serve = await runCli(config, dir, ['serve']);
  assert.equal(serve.code, 1, serve.stderr);
  assert.match(serve.stderr, /config\.yaml:12:11 http\.listen: .*not a loopback address/);
  assert.match(serve.stderr, /radius-mfa check-config lists every problem/);
  assertNoStack(serve);
});

test('a RADIUS port already in use: serve names listen.auth and the address, exit 1, no stack', async (t) => {
  const holder = createSocket('udp4');
  await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', resolve));
  t.after(() => holder.close());
  const port = holder.address().port;
  const { dir, config } = setup(t, '', `127.0.0.1:${port}`);
  const serve = await runCli(config, dir, ['serve']);
  assert.equal(serve.code, 1, serve.stderr);
  assert.match(serve.stderr, new RegExp(`^radius-mfa: listen\\.auth 127\\.0\\.0\\.1:${port} is already in use by another program: stop the program`, 'm'));
  assertNoStack(serve);
});

test('the HTTP port already in use: serve names http.listen and the port', async (t) => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.after(() => holder.close());
  const port = (holder.address() as { port: number }).port;
  const { dir, config } = setup(t, `http:\n  listen: "127.0.0.1:${port}"\n`);
  const serve = await runCli(config, dir, ['serve']);
  assert.equal(serve.code, 1, serve.stderr);
  assert.match(serve.stderr, new RegExp(`http\\.listen 127\\.0\\.0\\.1:${port} is already in use`));
  assertNoStack(serve);
});

test('a firebase.service_account_file that is not JSON, or not a service account: serve names the key and the file', async (t) => {
  const { dir, config } = setup(t, 'mobile_app:\n  firebase:\n    service_account_file: key.txt\n');
  writeFileSync(join(dir, 'key.txt'), 'not json at all\n');
  const notJson = await runCli(config, dir, ['serve']);
  assert.equal(notJson.code, 1, notJson.stderr);
  assert.match(notJson.stderr, /mobile_app\.firebase\.service_account_file key\.txt: is not JSON: set mobile_app\.firebase\.service_account_file to the JSON key file/);
  assertNoStack(notJson);
  writeFileSync(join(dir, 'key.txt'), '{"type": "service_account"}\n');
  const notKey = await runCli(config, dir, ['serve']);
  assert.equal(notKey.code, 1, notKey.stderr);
  assert.match(notKey.stderr, /service_account_file key\.txt: .*project_id/);
  assertNoStack(notKey);
});

test('a bad store.encryption_key is reported by check-config at its line', async (t) => {
  const { dir, config } = setup(t, '');
  writeFileSync(config, `listen:\n  auth: "127.0.0.1:0"\nclients: []\nstore:\n  path: ":memory:"\n  encryption_key: "abc"\n`);
  const check = await runCli(config, dir, ['check-config']);
  assert.equal(check.code, 1, check.stderr);
  assert.match(check.stderr, /config\.yaml:6:19 store\.encryption_key: must be 64 hex characters/);
  assertNoStack(check);
});

test('a usage error exits 2 with one line', async (t) => {
  const { dir, config } = setup(t, '');
  const run = await runCli(config, dir, ['user', 'show', ' spaced ']);
  assert.equal(run.code, 2, run.stderr);
  assert.match(run.stderr, /^radius-mfa: username " spaced " must not start or end with whitespace$/m);
  assertNoStack(run);
});
