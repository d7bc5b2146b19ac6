// A real PAM stack against our server: Debian `libpam-radius-auth` (pam_radius_auth.so 2.0) driven by
// `pamtester`, the way ocserv, sshd or any PAM-based VPN would use it. The PAM service file goes in
// /etc/pam.d under a random name (PAM reads services from there only) and is removed after each test.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createActivation } from '../src/mfa/activation.js';
import { SimulatedPhone } from './helpers/phone.js';
import { enrollTotp, startTestServer, wrongCodeAt, type ConfigInput, type TestServer } from './helpers/server.js';

const PAM_RADIUS = ['/lib/x86_64-linux-gnu/security/pam_radius_auth.so', '/usr/lib/x86_64-linux-gnu/security/pam_radius_auth.so'].find(existsSync);
const PASSWORD = 'pam-Passw0rd';

/** pam_radius_auth 2.0 sends no Message-Authenticator: its client entry has to allow that (and warns). */
async function server(t: TestContext, config: ConfigInput = {}): Promise<TestServer> {
  const secret = `pam-secret-${randomBytes(6).toString('hex')}`;
  const s = await startTestServer({
    secret,
    config: { clients: [{ name: 'pam-host', address: '127.0.0.1', secret, require_message_authenticator: false }], ...config },
  });
  t.after(() => s.close());
  return s;
}

/** /etc/pam.d/<random>: `auth required pam_radius_auth.so conf=<tmp file>`; the conf line is "HOST:PORT SECRET TIMEOUT". */
function pamService(t: TestContext, s: TestServer, timeoutSeconds: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-pam-'));
  const conf = join(dir, 'pam_radius_auth.conf');
  writeFileSync(conf, `127.0.0.1:${s.authPort} ${s.secret} ${timeoutSeconds}\n`, { mode: 0o600 });
  const name = `radius-mfa-test-${randomBytes(4).toString('hex')}`;
  const file = join('/etc/pam.d', name);
  writeFileSync(file, `auth required ${PAM_RADIUS} conf=${conf}\naccount required pam_permit.so\n`);
  t.after(() => {
    rmSync(file, { force: true });
    rmSync(dir, { recursive: true, force: true });
  });
  return name;
}

interface PamResult {
  ok: boolean;
  output: string;
}

/** pamtester SERVICE USER authenticate; each line of `answers` answers one prompt (password, then challenges). */
function pamtester(service: string, user: string, answers: string[], limitMs = 20_000): Promise<PamResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('pamtester', [service, user, 'authenticate'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ ok: code === 0 && /successfully authenticated/.test(output), output });
    });
    child.stdin.end(answers.map((a) => `${a}\n`).join(''));
  });
}

const skip = PAM_RADIUS ? false : 'pam_radius_auth.so not installed (scripts/install-test-deps.sh)';

test('pam_radius: password + TOTP code in one prompt is accepted; a wrong code is rejected', { skip }, async (t) => {
  const s = await server(t);
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const service = pamService(t, s, 5);
  const ok = await pamtester(service, 'alice', [PASSWORD + alice.codeAt(s.clock.now())]);
  assert.ok(ok.ok, ok.output);
  assert.equal(s.logs.audits('alice')[0]?.reason, 'second_factor_ok');

  const bad = await pamtester(service, 'alice', [PASSWORD + wrongCodeAt(alice, s.clock.now())]);
  assert.ok(!bad.ok, bad.output);
  assert.match(bad.output, /Authentication failure/);
  assert.equal(s.logs.audits('alice')[1]?.reason, 'bad_code');
  assert.ok(s.logs.filter((l) => typeof l.msg === 'string' && l.msg.includes('BlastRADIUS')).length > 0, 'the unsigned client is warned about');
});

test('pam_radius: challenge method, the code is asked in a second prompt', { skip }, async (t) => {
  const s = await server(t, { mfa: { default_method: 'challenge' } });
  const bob = await enrollTotp(s.store, 'bob', { password: PASSWORD });
  const service = pamService(t, s, 5);
  const r = await pamtester(service, 'bob', [PASSWORD, bob.codeAt(s.clock.now())]);
  assert.ok(r.ok, r.output);
  assert.match(r.output, /Enter the code from your authenticator app/);
  assert.deepEqual(s.logs.audits('bob').map((a) => a.reason), ['code_requested', 'second_factor_ok']);
});

test('pam_radius: push approved on the simulated phone while pamtester waits', { skip }, async (t) => {
  const s = await server(t, { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', push: { timeout: '10s' } } });
  await enrollTotp(s.store, 'carol', { password: PASSWORD });
  const activation = await createActivation(s.store, s.config, 'carol', s.clock.now());
  const phone = await SimulatedPhone.activate(`http://127.0.0.1:${s.httpPort}`, activation.activation_code);
  // pam_radius waits 15 s per try: longer than the push may take.
  const service = pamService(t, s, 15);
  const login = pamtester(service, 'carol', [PASSWORD]);
  const request = await phone.waitForPending(10_000);
  assert.equal(request.username, 'carol');
  await phone.answer(request.id, 'approve');
  const r = await login;
  assert.ok(r.ok, r.output);
  assert.equal(s.logs.audits('carol').find((a) => a.msg === 'decision')?.reason, 'push_approved');
});
