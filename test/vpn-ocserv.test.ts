// ocserv 1.1 (OpenConnect VPN server, RADIUS through radcli) in front of our server, and the real
// openconnect client, all on loopback. `openconnect --authenticate` stops after the login (it prints
// the session cookie): no tun device, no root inside the client; the auth result is what is judged.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeTcpPort } from '../scripts/engines/ports.js';
import { makeTlsFiles } from './helpers/slapd.js';
import { enrollTotp, startTestServer, wrongCodeAt, type EnrolledUser, type TestServer } from './helpers/server.js';

const OCSERV = '/usr/sbin/ocserv';
const missing = !existsSync(OCSERV) || !existsSync('/usr/sbin/openconnect') ? 'ocserv and openconnect are not installed (scripts/install-test-deps.sh)' : false;
const SECRET = 'ocserv-shared-secret-0123456789';

let server: TestServer;
let ocserv: ChildProcess | undefined;
let dir: string;
let url: string;
let pin: string;
let ocservLog = '';

before(async () => {
  if (missing) return;
  server = await startTestServer({
    secret: SECRET,
    // radcli 1.2.11 sends no Message-Authenticator (docs/vpn/ocserv.md).
    config: { clients: [{ name: 'ocserv', address: '127.0.0.1', secret: SECRET, require_message_authenticator: false }], mfa: { challenge: { prompt: 'Enter your code' } } },
  });
  dir = mkdtempSync(join(tmpdir(), 'radius-mfa-ocserv-'));
  // ocserv's workers run as nobody and reach sec-mod through a socket in this directory.
  chmodSync(dir, 0o755);
  const tls = makeTlsFiles(dir);
  pin = `pin-sha256:${createHash('sha256').update(new X509Certificate(readFileSync(tls.cert)).publicKey.export({ type: 'spki', format: 'der' })).digest('base64')}`;
  writeFileSync(join(dir, 'servers'), `127.0.0.1 ${SECRET}\n`, { mode: 0o600 });
  writeFileSync(
    join(dir, 'radiusclient.conf'),
    [`nas-identifier ocserv-test`, `authserver 127.0.0.1:${server.authPort}`, `acctserver 127.0.0.1:${server.acctPort}`, `servers ${join(dir, 'servers')}`, 'dictionary /etc/radcli/dictionary', 'radius_timeout 5', 'radius_retries 1', 'bindaddr *', ''].join('\n'),
  );
  const port = await freeTcpPort();
  writeFileSync(
    join(dir, 'ocserv.conf'),
    [
      `auth = "radius[config=${join(dir, 'radiusclient.conf')}]"`,
      'listen-host = 127.0.0.1',
      `tcp-port = ${port}`,
      `server-cert = ${tls.cert}`,
      `server-key = ${tls.key}`,
      `socket-file = ${join(dir, 'ocserv.sock')}`,
      `pid-file = ${join(dir, 'ocserv.pid')}`,
      'run-as-user = nobody',
      'run-as-group = nogroup',
      'isolate-workers = false',
      'use-occtl = false',
      'device = vpns',
      'ipv4-network = 192.168.99.0/24',
      '',
    ].join('\n'),
  );
  url = `https://127.0.0.1:${port}/`;
  ocserv = spawn(OCSERV, ['-f', '-d', '2', '-c', join(dir, 'ocserv.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const ready = new Promise<void>((resolve, reject) => {
    const seen = (chunk: Buffer) => {
      ocservLog += chunk;
      // One sec-mod per CPU: all must be up before a login can land on any of them.
      const instances = Number(/Starting (\d+) instances of ocserv-sm/.exec(ocservLog)?.[1] ?? Infinity);
      if (/listening \(TCP\)/.test(ocservLog) && (ocservLog.match(/sec-mod initialized/g)?.length ?? 0) >= instances) resolve();
    };
    ocserv!.stdout!.on('data', seen);
    ocserv!.stderr!.on('data', seen);
    ocserv!.once('exit', (code) => reject(new Error(`ocserv exited (${code}) before it was ready:\n${ocservLog}`)));
  });
  const timer = setTimeout(() => ocserv?.kill(), 10_000);
  await ready.finally(() => clearTimeout(timer));
});

after(async () => {
  if (ocserv && ocserv.exitCode === null) {
    const exited = new Promise((resolve) => ocserv!.once('exit', resolve));
    ocserv.kill();
    await exited;
  }
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** openconnect --authenticate, answering its prompts (password, then any challenge) line by line from stdin. */
function openconnect(user: string, answers: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('openconnect', ['--authenticate', '--non-inter', '--user', user, '--passwd-on-stdin', `--servercert=${pin}`, url], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill(), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
    child.stdin.end(answers.map((a) => `${a}\n`).join(''));
  });
}

const reasons = (user: EnrolledUser) => server.logs.audits(user.username).map((a) => `${a.result}:${a.reason}`);

test('password + current code at the one prompt: openconnect gets its session cookie; the audit line names the ocserv NAS', { skip: missing }, async () => {
  const alice = await enrollTotp(server.store, 'alice', { password: 'pw-alice' });
  const r = await openconnect('alice', [`pw-alice${alice.codeAt(server.clock.now())}`]);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /COOKIE='/);
  assert.deepEqual(reasons(alice), ['accept:second_factor_ok']);
  const [audit] = server.logs.audits('alice');
  assert.equal(audit?.nas_id, 'ocserv-test');
  assert.equal(audit?.client, 'ocserv');
});

test('a wrong code: openconnect is refused and gets no cookie', { skip: missing }, async () => {
  const bob = await enrollTotp(server.store, 'bob', { password: 'pw-bob' });
  const r = await openconnect('bob', [`pw-bob${wrongCodeAt(bob, server.clock.now())}`]);
  assert.notEqual(r.code, 0, r.output);
  assert.doesNotMatch(r.output, /COOKIE='/);
  assert.deepEqual(reasons(bob), ['reject:bad_code']);
});

test('challenge method: ocserv shows our prompt, the code typed there goes back with our State and is accepted, login after login', { skip: missing }, async () => {
  const carol = await enrollTotp(server.store, 'carol', { password: 'pw-carol', method: 'challenge' });
  for (let i = 0; i < 5; i++) {
    // A new step each time: the replay guard takes every code once.
    server.clock.advance(30_000);
    const r = await openconnect('carol', ['pw-carol', carol.codeAt(server.clock.now())]);
    assert.equal(r.code, 0, `login ${i + 1}:\n${r.output}`);
    assert.match(r.output, /Enter your code/);
  }
  assert.deepEqual(reasons(carol), Array.from({ length: 5 }, () => ['challenge:code_requested', 'accept:second_factor_ok']).flat());
});
