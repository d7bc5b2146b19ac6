// `radius-mfa test USER` against a real server: the password (and codes) from stdin, challenges followed,
// a push waited through, the reply and its attributes printed, exit 0 only on Access-Accept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createActivation } from '../src/mfa/activation.js';
import { runCli } from './helpers/cli.js';
import { SimulatedPhone } from './helpers/phone.js';
import { freeUdpPort } from '../scripts/engines/ports.js';
import { enrollTotp, startTestServer, wrongCodeAt, type StartOptions, type TestServer } from './helpers/server.js';

/** A config the CLI reads: the running server's port and the secret of the client 127.0.0.1 is. */
function cliConfig(t: { after(fn: () => void): void }, server: TestServer, extra = ''): { path: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-testcmd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'config.yaml');
  writeFileSync(
    path,
    `listen:\n  auth: "127.0.0.1:${server.authPort}"\nclients:\n  - name: test-nas\n    address: 127.0.0.1\n    secret: "${server.secret}"\nstore:\n  path: "${join(dir, 'unused.db')}"\n${extra}`,
  );
  return { path, dir };
}

async function serverFor(t: { after(fn: () => Promise<void>): void }, opts: StartOptions = {}): Promise<TestServer> {
  const s = await startTestServer(opts);
  t.after(() => s.close());
  return s;
}

test('test: a TOTP login read from stdin is accepted, with the reply attributes, the time taken and exit code 0', async (t) => {
  const s = await serverFor(t, { config: { groups: { staff: { members: ['alice'], reply: { 'Filter-Id': 'vpn-staff', Class: 'gold' } } } } });
  const alice = await enrollTotp(s.store, 'alice', { password: 'pw-alice' });
  const { path, dir } = cliConfig(t, s);
  const r = await runCli(path, dir, ['test', 'alice'], `pw-alice${alice.codeAt(s.clock.now())}\n`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^Sent Access-Request for alice to 127\.0\.0\.1:\d+$/m);
  assert.match(r.stdout, /^Received Access-Accept from 127\.0\.0\.1:\d+ in \d+ ms$/m);
  assert.match(r.stdout, /^\tFilter-Id = "vpn-staff"$/m);
  assert.match(r.stdout, /^\tClass = 0x676f6c64$/m);
  assert.match(r.stdout, /^Total time \d+ ms \(1 request\)$/m);
  const audit = s.logs.audits('alice')[0];
  assert.equal(audit?.result, 'accept');
  assert.match(String(audit?.nas_id), /^radius-mfa-test-[0-9a-f]{8}$/);
  assert.equal(audit?.nas_ip, '127.0.0.1');
  assert.ok(r.stdout.includes(String(audit?.nas_id)), 'the output names the NAS-Identifier to find the audit line by');
  assert.ok(!r.stdout.includes('pw-alice') && !r.stderr.includes('pw-alice'), 'the password is never echoed');
});

test('test: a wrong code prints Access-Reject with its Reply-Message and exits 1', async (t) => {
  const s = await serverFor(t);
  const alice = await enrollTotp(s.store, 'alice', { password: 'pw-alice' });
  const { path, dir } = cliConfig(t, s);
  const r = await runCli(path, dir, ['test', 'alice', '--nas-ip', '192.0.2.10'], `pw-alice${wrongCodeAt(alice, s.clock.now())}\n`);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^Received Access-Reject /m);
  assert.match(r.stdout, /^\tReply-Message = ".+"$/m);
  assert.equal(s.logs.audits('alice')[0]?.nas_ip, '192.0.2.10');
});

test('test: follows an Access-Challenge by reading the next line for the code', async (t) => {
  const s = await serverFor(t, { config: { mfa: { default_method: 'challenge' } } });
  const bob = await enrollTotp(s.store, 'bob', { password: 'pw-bob' });
  const { path, dir } = cliConfig(t, s);
  const r = await runCli(path, dir, ['test', 'bob'], `pw-bob\n${bob.codeAt(s.clock.now())}\n`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /Received Access-Challenge[^\n]*\n(\t[^\n]*\n)*Sent Access-Request for bob to [^\n]* \(answering the challenge\)\nReceived Access-Accept/);
  assert.match(r.stdout, /^Total time \d+ ms \(2 requests\)$/m);
});

test('test: stdin that ends before the challenge is answered is an error that says so', async (t) => {
  const s = await serverFor(t, { config: { mfa: { default_method: 'challenge' } } });
  await enrollTotp(s.store, 'bob', { password: 'pw-bob' });
  const { path, dir } = cliConfig(t, s);
  const r = await runCli(path, dir, ['test', 'bob'], 'pw-bob\n');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /stdin ended before the answer to the challenge: give one line per answer/);
});

test('test: waits through a push until the phone approves it', async (t) => {
  const s = await serverFor(t, { config: { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', push: { timeout: '20s' } } } });
  await enrollTotp(s.store, 'carol', { password: 'pw-carol' });
  const activation = await createActivation(s.store, s.config, 'carol', s.clock.now());
  const phone = await SimulatedPhone.activate(`http://127.0.0.1:${s.httpPort}`, activation.activation_code);
  const { path, dir } = cliConfig(t, s);
  const run = runCli(path, dir, ['test', 'carol'], 'pw-carol\n');
  const request = await phone.waitForPending();
  await phone.answer(request.id, 'approve');
  const r = await run;
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^Received Access-Accept /m);
  assert.equal(s.logs.audits('carol').find((a) => a.msg === 'decision')?.reason, 'push_approved', s.logs.lines.join('\n'));
});

test('test: no server on the port, and a wrong secret, end with "no valid reply" naming what to check', async (t) => {
  const s = await serverFor(t);
  await enrollTotp(s.store, 'alice', { password: 'pw-alice' });
  const { path, dir } = cliConfig(t, s);
  const port = await freeUdpPort();
  const down = await runCli(path, dir, ['test', 'alice', '--server', `127.0.0.1:${port}`, '--timeout', '0.3'], 'pw-alice\n');
  assert.equal(down.code, 1);
  assert.match(down.stderr, new RegExp(`no valid reply from 127\\.0\\.0\\.1:${port}: .*Check --server \\(or listen\\.auth\\), that the server runs, and --secret`));
  const wrong = await runCli(path, dir, ['test', 'alice', '--secret', 'not-the-secret', '--timeout', '0.3'], 'pw-alice\n');
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /no valid reply from 127\.0\.0\.1:\d+/);
  assert.equal(s.logs.audits('alice').length, 0, 'the server decided nothing for a request it could not verify');
});

test('test: without --server and no usable config, or no client for 127.0.0.1, the error names the fix', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-testcmd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = await runCli(join(dir, 'nope.yaml'), dir, ['test', 'alice'], 'pw\n');
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /the server address is not known: give --server HOST:PORT, or a readable config with --config \(.*nope\.yaml does not exist\)/);
  const path = join(dir, 'c.yaml');
  writeFileSync(path, 'listen:\n  auth: "127.0.0.1:1812"\nclients:\n  - name: far\n    address: 10.0.0.0/8\n    secret: s\n');
  const noClient = await runCli(path, dir, ['test', 'alice'], 'pw\n');
  assert.equal(noClient.code, 1);
  assert.match(noClient.stderr, /no client in .*c\.yaml covers 127\.0\.0\.1, where this test comes from: add one .* or give --secret/);
  const badServer = await runCli(path, dir, ['test', 'alice', '--server', 'a:b:c'], 'pw\n');
  assert.equal(badServer.code, 2);
  assert.match(badServer.stderr, /--server "a:b:c": use HOST:PORT/);
});
