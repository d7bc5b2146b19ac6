// `radius-mfa check-config --connect` against the real slapd and FreeRADIUS the suite starts: one line per
// backend, ok or the cause and the fix, exit 1 when any fails.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';
import { startFreeradius, type Freeradius } from './helpers/freeradius.js';
import { freeTcpPort, freeUdpPort } from '../scripts/engines/ports.js';
import { startSlapd, SUFFIX, type Slapd } from './helpers/slapd.js';

const SECRET = 'upstream-check-secret';
let slapd: Slapd;
let freeradius: Freeradius;
let silent: Socket;
let silentPort: number;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'radius-mfa-connect-'));
  [slapd, freeradius] = await Promise.all([
    startSlapd({ users: [{ uid: 'alice', password: 'alice-pw' }], groups: {} }),
    startFreeradius({ secret: SECRET, users: [{ name: 'alice', password: 'alice-pw' }] }),
  ]);
  // A RADIUS server that never answers Status-Server (NPS does not; a down server does not either).
  silent = createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
  silentPort = silent.address().port;
});

after(async () => {
  silent.close();
  await Promise.all([slapd?.stop(), freeradius?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const BASE = `listen:\n  auth: "127.0.0.1:1812"\nclients:\n  - name: nas\n    address: 127.0.0.1\n    secret: s\n`;

async function check(name: string, body: string) {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, `${BASE}store:\n  path: "${join(dir, `${name}.db`)}"\n${body}`);
  return runCli(path, dir, ['check-config', '--connect']);
}

const ldap = (over: { url?: string; password?: string; base?: string }) => `first_factor:
  type: ldap
  url: "${over.url ?? slapd.url}"
  # slapd runs on this host for the test: plain ldap:// is allowed only with this (config/schema.ts).
  allow_insecure: true
  timeout: 2s
  search:
    bind_dn: "cn=radius-svc,${SUFFIX}"
    password: "${over.password ?? 'svc-password'}"
    base: "${over.base ?? `ou=people,${SUFFIX}`}"
`;

test('check-config --connect: LDAP service bind and search ok, one line per backend, exit 0', async () => {
  const r = await check('ldap-ok', ldap({}));
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^OK .*ldap-ok\.yaml/m);
  assert.match(r.stdout, /^ok {4}store sqlite: .*ldap-ok\.db does not exist yet: it is created on first start$/m);
  assert.match(r.stdout, new RegExp(`^ok {4}ldap ${slapd.url.replace(/[.:/]/g, '\\$&')}: service bind as cn=radius-svc,${SUFFIX} and search of ou=people,${SUFFIX} succeeded$`, 'm'));
});

test('check-config --connect: a wrong service password, a missing base and a closed port each fail with the field to fix', async () => {
  const badPw = await check('ldap-pw', ldap({ password: 'wrong' }));
  assert.equal(badPw.code, 1);
  assert.match(badPw.stdout, /^FAIL {2}ldap .*: bind as cn=radius-svc,dc=example,dc=com: invalid credentials; fix: fix first_factor\.search\.bind_dn and first_factor\.search\.password \(the service account\)$/m);
  assert.match(badPw.stderr, /some backends failed: see the FAIL lines above/);
  const badBase = await check('ldap-base', ldap({ base: `ou=nobody,${SUFFIX}` }));
  assert.equal(badBase.code, 1);
  assert.match(badBase.stdout, /^FAIL {2}ldap .*: search ou=nobody,dc=example,dc=com: no such object; fix: fix first_factor\.search\.base/m);
  const port = await freeTcpPort();
  const closed = await check('ldap-closed', ldap({ url: `ldap://127.0.0.1:${port}` }));
  assert.equal(closed.code, 1);
  assert.match(closed.stdout, new RegExp(`^FAIL {2}ldap ldap://127\\.0\\.0\\.1:${port}: cannot connect to ldap://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*; fix: check first_factor\\.url, that the LDAP server runs`, 'm'));
});

test('check-config --connect: Status-Server to FreeRADIUS is ok; a server that does not answer it gets a clear line', async () => {
  const body = (port: number, secret = SECRET) => `first_factor:
  type: radius
  timeout: 1s
  servers:
    - address: "127.0.0.1:${freeradius.port}"
      secret: "${SECRET}"
      require_message_authenticator: false
    - address: "127.0.0.1:${port}"
      secret: "${secret}"
accounting:
  forward:
    servers:
      - address: "127.0.0.1:${freeradius.acctPort}"
        secret: "${SECRET}"
`;
  const r = await check('radius', body(silentPort));
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`^ok {4}radius upstream 127\\.0\\.0\\.1:${freeradius.port}: answered Status-Server in \\d+ ms$`, 'm'));
  assert.match(r.stdout, new RegExp(`^ok {4}accounting forward 127\\.0\\.0\\.1:${freeradius.acctPort}: answered Status-Server in \\d+ ms$`, 'm'));
  assert.match(
    r.stdout,
    new RegExp(`^FAIL {2}radius upstream 127\\.0\\.0\\.1:${silentPort}: no answer to Status-Server after 2 tries of 2000 ms: the server is down, first_factor\\.servers\\[1\\]\\.secret is wrong .*, or it does not answer Status-Server; fix: .*NPS does not answer Status-Server: test a login with radius-mfa test USER instead$`, 'm'),
  );
  // A secret FreeRADIUS does not know: it drops the request, so this is "no answer" too, naming the secret.
  const wrong = await check('radius-secret', body(freeradius.port, 'not-the-secret').replace(/(servers:\n {4}- address: "127\.0\.0\.1:\d+"\n {6}secret: ")[^"]+/, '$1not-the-secret'));
  assert.equal(wrong.code, 1);
  assert.match(wrong.stdout, /^FAIL {2}radius upstream .*first_factor\.servers\[0\]\.secret is wrong/m);
  const closedPort = await freeUdpPort();
  const closed = await check('radius-closed', body(closedPort).replace(/accounting:[\s\S]*/, ''));
  assert.match(closed.stdout, new RegExp(`^FAIL {2}radius upstream 127\\.0\\.0\\.1:${closedPort}: (port unreachable: nothing listens on that UDP port|no answer to Status-Server)`, 'm'));
});

test('check-config --connect: FCM service account problems and Web Push keys are reported without any network', async () => {
  const missing = await check('fcm-missing', `mobile_app:\n  firebase:\n    service_account_file: "${join(dir, 'nope.json')}"\n`);
  assert.equal(missing.code, 1);
  assert.match(missing.stdout, /^FAIL {2}fcm .*nope\.json: mobile_app\.firebase\.service_account_file .*nope\.json does not exist; fix: download the service account key/m);
  writeFileSync(join(dir, 'bad.json'), '{"project_id": "p", "client_email": "x@p.iam.gserviceaccount.com", "private_key": "not a key"}');
  const badKey = await check('fcm-bad', `mobile_app:\n  firebase:\n    service_account_file: "${join(dir, 'bad.json')}"\n`);
  assert.equal(badKey.code, 1);
  assert.match(badKey.stdout, /^FAIL {2}fcm .*bad\.json: .*Failed to parse private key.*; fix: use a service account key file from the Firebase console/m);
  const keys = await runCli(join(dir, 'none.yaml'), dir, ['web-push', 'keys', '--subject', 'mailto:ops@example.com']);
  assert.equal(keys.code, 0, keys.stderr);
  const vapid = await check('vapid', keys.stdout.replace(/^#.*\n/gm, ''));
  assert.equal(vapid.code, 0, vapid.stdout + vapid.stderr);
  assert.match(vapid.stdout, /^ok {4}web push keys: VAPID key pair valid \(subject mailto:ops@example\.com\)/m);
});
