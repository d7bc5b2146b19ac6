// A real OpenVPN 2.6 server with the Debian `openvpn-auth-radius` plugin (radiusplugin 2.1) pointed at our
// server, and a real OpenVPN client connecting over loopback (server on tun, client on --dev null).
// radiusplugin reads ports as at most 4 digits, so our server listens below 10000 here; it sends no
// Message-Authenticator, and it needs its Accounting-Request Start answered or it drops the user.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createActivation } from '../src/mfa/activation.js';
import { SimulatedPhone } from './helpers/phone.js';
import { enrollTotp, startTestServer, wrongCodeAt, type ConfigInput, type TestServer } from './helpers/server.js';
import { freeUdpPort } from '../scripts/engines/ports.js';
import { makeTlsFiles } from './helpers/slapd.js';

const OPENVPN = '/usr/sbin/openvpn';
const PLUGIN = '/usr/lib/openvpn/radiusplugin.so';
const PASSWORD = 'ovpn-Passw0rd';
const skip = !existsSync(OPENVPN) || !existsSync(PLUGIN) ? 'openvpn / openvpn-auth-radius not installed' : !existsSync('/dev/net/tun') ? 'no /dev/net/tun here' : false;

/** A free UDP port in 2000..9999 (radiusplugin truncates longer port numbers). */
async function lowUdpPort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = randomInt(2000, 10_000);
    const free = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free UDP port below 10000');
}

async function server(t: TestContext, config: ConfigInput = {}): Promise<TestServer> {
  const secret = `ovpn-secret-${randomBytes(6).toString('hex')}`;
  for (let attempt = 0; attempt < 5; attempt++) {
    const [auth, acct] = [await lowUdpPort(), await lowUdpPort()];
    if (auth === acct) continue;
    try {
      const s = await startTestServer({
        secret,
        config: {
          listen: { auth: `127.0.0.1:${auth}`, acct: `127.0.0.1:${acct}` },
          clients: [{ name: 'openvpn', address: '127.0.0.1', secret, require_message_authenticator: false }],
          ...config,
        },
      });
      t.after(() => s.close());
      return s;
    } catch (err) {
      if (!String(err).includes('EADDRINUSE')) throw err;
    }
  }
  throw new Error('could not bind our server below port 10000');
}

interface Proc {
  output(): string;
  waitFor(re: RegExp, timeoutMs: number): Promise<string>;
  stop(): Promise<void>;
}

function run(cmd: string, args: string[]): Proc {
  const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return {
    output: () => out,
    async waitFor(re, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
        const m = re.exec(out);
        if (m) return m[0];
        if (exited) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no ${re} within ${timeoutMs} ms (exited: ${exited}):\n${out}`);
    },
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        await exit;
      }
    },
  };
}

/** OpenVPN server (tun, 10.x.y.0/24) with radiusplugin; `wait` = radiusplugin's per-try wait in seconds. */
async function openvpnServer(t: TestContext, s: TestServer, wait: number): Promise<{ port: number; ca: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-openvpn-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tls = makeTlsFiles(dir);
  const port = await freeUdpPort();
  const net = `10.${randomInt(100, 250)}.${randomInt(0, 250)}.0`;
  const serverConf = join(dir, 'server.conf');
  writeFileSync(
    join(dir, 'radiusplugin.cnf'),
    `NAS-Identifier=openvpn-test
Service-Type=5
Framed-Protocol=1
NAS-Port-Type=5
NAS-IP-Address=127.0.0.1
OpenVPNConfig=${serverConf}
subnet=255.255.255.0
overwriteccfiles=true
nonfatalaccounting=false
server
{
	acctport=${s.acctPort}
	authport=${s.authPort}
	name=127.0.0.1
	retry=1
	wait=${wait}
	sharedsecret=${s.secret}
}
`,
  );
  writeFileSync(
    serverConf,
    `mode server
tls-server
proto udp4
local 127.0.0.1
port ${port}
dev tun
topology subnet
server ${net} 255.255.255.0
ca ${tls.ca}
cert ${tls.cert}
key ${tls.key}
dh none
verify-client-cert none
username-as-common-name
plugin ${PLUGIN} ${join(dir, 'radiusplugin.cnf')}
hand-window 60
verb 4
`,
  );
  const p = run(OPENVPN, ['--config', serverConf, '--cd', dir]);
  t.after(() => p.stop());
  await p.waitFor(/Initialization Sequence Completed/, 20_000);
  return { port, ca: tls.ca };
}

/** An OpenVPN client with auth-user-pass; resolves with "connected" or "auth_failed". */
async function connect(t: TestContext, server: { port: number; ca: string }, user: string, password: string, limitMs = 30_000): Promise<'connected' | 'auth_failed'> {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-ovpnc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'auth.txt'), `${user}\n${password}\n`, { mode: 0o600 });
  const p = run(OPENVPN, [
    '--client', '--dev', 'null', '--proto', 'udp4', '--remote', '127.0.0.1', String(server.port), '--nobind',
    '--ca', server.ca, '--verify-x509-name', 'localhost', 'name', '--auth-user-pass', join(dir, 'auth.txt'), '--auth-retry', 'none',
    '--ifconfig-noexec', '--route-noexec', '--verb', '3', '--connect-retry-max', '1', '--hand-window', '60',
  ]);
  try {
    const hit = await p.waitFor(/Initialization Sequence Completed|AUTH_FAILED/, limitMs);
    return hit === 'AUTH_FAILED' ? 'auth_failed' : 'connected';
  } finally {
    await p.stop();
  }
}

test('OpenVPN + radiusplugin: password + TOTP connects and accounting Start is answered; a wrong code gets AUTH_FAILED', { skip }, async (t) => {
  const s = await server(t, { groups: { staff: { members: ['alice'], reply: { 'Framed-IP-Netmask': '255.255.255.0', 'Acct-Interim-Interval': 600 } } } });
  const alice = await enrollTotp(s.store, 'alice', { password: PASSWORD });
  const ovpn = await openvpnServer(t, s, 5);
  assert.equal(await connect(t, ovpn, 'alice', PASSWORD + alice.codeAt(s.clock.now())), 'connected');
  assert.equal(s.logs.audits('alice')[0]?.reason, 'second_factor_ok');
  const start = await s.logs.waitFor({ msg: 'accounting', user: 'alice', status: 1 }, 10_000);
  assert.equal(start.nas_id, 'openvpn-test');

  s.clock.advance(60_000);
  assert.equal(await connect(t, ovpn, 'alice', PASSWORD + wrongCodeAt(alice, s.clock.now())), 'auth_failed');
  assert.equal(s.logs.audits('alice').at(-1)?.reason, 'bad_code');
});

test('OpenVPN + radiusplugin: push approved on the simulated phone while OpenVPN waits', { skip }, async (t) => {
  const s = await server(t, { http: { listen: '127.0.0.1:0' }, mfa: { default_method: 'push', push: { timeout: '15s' } } });
  await enrollTotp(s.store, 'carol', { password: PASSWORD });
  const activation = await createActivation(s.store, s.config, 'carol', s.clock.now());
  const phone = await SimulatedPhone.activate(`http://127.0.0.1:${s.httpPort}`, activation.activation_code);
  // radiusplugin waits `wait` seconds per try: it must outlast the push.
  const ovpn = await openvpnServer(t, s, 20);
  const login = connect(t, ovpn, 'carol', PASSWORD, 40_000);
  const request = await phone.waitForPending(20_000);
  await phone.answer(request.id, 'approve');
  assert.equal(await login, 'connected');
  assert.equal(s.logs.audits('carol').find((a) => a.msg === 'decision')?.reason, 'push_approved');
});
