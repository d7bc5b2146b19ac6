// LDAP first factor against a real slapd (Debian `slapd`, started here on loopback with a seeded directory),
// driven by the real radclient. The TOTP second factor and the reply attributes come from our server.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ldapts';
import { escapeDnValue, escapeFilterValue, ldapFirstFactor } from '../src/auth/ldap.js';
import { configSchema, type LdapFirstFactorConfig } from '../src/config/schema.js';
import { createLogger } from '../src/log/logger.js';
import { Code } from '../src/radius/packet.js';
import { ScureBase32Plugin } from 'otplib';
import { launchBrowser, phoneContext, watchErrors } from './helpers/browser.js';
import { radclient, type AttributeInput } from './helpers/radclient.js';
import { buildAccessRequest, decodeReply, UdpClient } from './helpers/udp.js';
import { codeAt, enrollTotp, LogCapture, startTestServer, type ConfigInput, type TestServer } from './helpers/server.js';
import { freeTcpPort } from '../scripts/engines/ports.js';
import { makeTlsFiles, startSlapd, SUFFIX, type Slapd } from './helpers/slapd.js';

const PW = { alice: 'alice-Passw0rd', bob: 'bob-Passw0rd', carol: 'carol-Passw0rd', dave: 'dave-Passw0rd' };
let slapd: Slapd;

before(async () => {
  slapd = await startSlapd({
    users: [
      { uid: 'alice', password: PW.alice, mail: 'alice@example.com' },
      { uid: 'bob', password: PW.bob },
      { uid: 'carol', password: PW.carol },
      { uid: 'dave', password: PW.dave },
    ],
    groups: { 'vpn-admins': ['alice'], contractors: ['bob'], 'service-accounts': ['carol'], disabled: ['dave'] },
  });
});
after(() => slapd?.stop());

const GROUPS = {
  'vpn-admins': { reply: { 'Filter-Id': 'admins', Class: 'admin-class', 'Cisco-AVPair': 'shell:priv-lvl=15' } },
  contractors: { method: 'challenge', reply: { 'Fortinet-Group-Name': 'contractors' } },
  'service-accounts': { method: 'none', reply: { 'PaloAlto-User-Group': 'svc' } },
  disabled: { method: 'deny' },
};

function searchConfig(over: ConfigInput = {}): ConfigInput {
  return {
    type: 'ldap',
    url: slapd.url,
    start_tls: true,
    ca_file: slapd.caFile,
    search: { bind_dn: `cn=radius-svc,${SUFFIX}`, password: 'svc-password', base: `ou=people,${SUFFIX}`, filter: '(uid={user})' },
    timeout: '2s',
    ...over,
  };
}

async function server(t: TestContext, firstFactor: ConfigInput, config: ConfigInput = {}): Promise<TestServer> {
  const s = await startTestServer({ config: { first_factor: firstFactor, groups: GROUPS, mfa: { default_method: 'totp' }, ...config } });
  t.after(() => s.close());
  return s;
}

function ask(s: TestServer, attributes: AttributeInput) {
  return radclient(attributes, { port: s.authPort, secret: s.secret, timeout: 8 });
}

function assertNoSecretsLogged(s: TestServer): void {
  const all = s.logs.lines.join('\n');
  for (const secret of [...Object.values(PW), 'svc-password', s.secret]) assert.ok(!all.includes(secret), `log contains a secret: ${secret}`);
}

test('RFC 4515 filter and RFC 4514 DN escaping', () => {
  assert.equal(escapeFilterValue('al*)(uid=*'), 'al\\2a\\29\\28uid=\\2a');
  assert.equal(escapeFilterValue('a\\b\0'), 'a\\5cb\\00');
  assert.equal(escapeFilterValue('jörg'), 'j\\c3\\b6rg');
  assert.equal(escapeDnValue('alice,ou=admins'), 'alice\\,ou\\=admins');
  assert.equal(escapeDnValue(' #x+y '), '\\ #x\\+y\\ ');
});

test('search mode over StartTLS: good password + TOTP accepted with the directory group reply attributes', async (t) => {
  const s = await server(t, searchConfig());
  const alice = await enrollTotp(s.store, 'alice');
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PW.alice + alice.codeAt(s.clock.now()) });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.deepEqual(r.attributes['Filter-Id'], ['admins']);
  assert.deepEqual(r.attributes['Class'], ['0x' + Buffer.from('admin-class').toString('hex')]);
  assert.deepEqual(r.attributes['Cisco-AVPair'], ['shell:priv-lvl=15']);
  assert.equal(s.logs.audits('alice')[0]?.reason, 'second_factor_ok');
  assertNoSecretsLogged(s);
});

test('plain ldap:// with allow_insecure: true still works against slapd, and the start is logged as a warning naming the key', async (t) => {
  const s = await server(t, searchConfig({ start_tls: false, allow_insecure: true, ca_file: undefined }));
  const warn = s.logs.filter((l) => l.level === 'warn' && l.first_factor === 'ldap' && /allow_insecure/.test(String(l.msg)));
  assert.equal(warn.length, 1, s.logs.lines.join('\n'));
  assert.deepEqual(warn[0]!.ldap, [slapd.url]);
  const alice = await enrollTotp(s.store, 'alice');
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PW.alice + alice.codeAt(s.clock.now()) });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assertNoSecretsLogged(s);
});

test('a directory-only user (no local record) signs in to the portal with the LDAP password in Chromium, enrolls TOTP, then logs in to the VPN', async (t) => {
  const s = await server(t, searchConfig(), { http: { listen: '127.0.0.1:0' } });
  assert.equal(await s.store.getUser('alice'), undefined);
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await (await phoneContext(browser)).newPage();
  const errors = watchErrors(page);
  await page.goto(`http://127.0.0.1:${s.httpPort}/portal/`);
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('wrong-' + PW.alice);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  await page.getByLabel('Password').fill(PW.alice);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
  const secret = Buffer.from(new ScureBase32Plugin().decode((await page.locator('#totp-secret').textContent())!.replace(/\s/g, '')));
  await page.getByLabel('Code from the app').fill(codeAt(secret, s.clock.now()));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('status').filter({ hasText: 'Your authenticator app is set up.' }).waitFor();
  // The portal made the local record that holds the second factor; the password stays in the directory.
  const record = await s.store.getUser('alice');
  assert.deepEqual(record?.totp?.secret, secret);
  assert.equal(record?.passwordHash, null);

  s.clock.advance(30_000);
  const vpn = await ask(s, { 'User-Name': 'alice', 'User-Password': PW.alice + codeAt(secret, s.clock.now()) });
  assert.equal(vpn.code, 'Access-Accept', vpn.stdout);
  assert.deepEqual(vpn.attributes['Filter-Id'], ['admins']);
  assert.deepEqual(errors, []);
  assertNoSecretsLogged(s);
});

test('bad password, unknown user and an injected filter are rejected', async (t) => {
  const s = await server(t, searchConfig());
  const alice = await enrollTotp(s.store, 'alice');
  const code = alice.codeAt(s.clock.now());
  assert.equal((await ask(s, { 'User-Name': 'alice', 'User-Password': 'wrong-password' + code })).code, 'Access-Reject');
  assert.equal(s.logs.audits('alice')[0]?.reason, 'bad_password');
  assert.equal((await ask(s, { 'User-Name': 'mallory', 'User-Password': 'whatever' + code })).code, 'Access-Reject');
  assert.equal(s.logs.audits('mallory')[0]?.reason, 'unknown_user');
  // Unescaped, "(uid=al*)" would find alice and her password would work.
  assert.equal((await ask(s, { 'User-Name': 'al*', 'User-Password': PW.alice + code })).code, 'Access-Reject');
  assert.equal(s.logs.audits('al*')[0]?.reason, 'unknown_user');
  assertNoSecretsLogged(s);
});

test('an empty password is refused before any bind as the user (anonymous-bind trap is armed in slapd)', async (t) => {
  const s = await server(t, searchConfig());
  const before = slapd.log().length;
  // radclient leaves an empty User-Password out; a NAS can send one (16 NULs hidden), so send it raw.
  const c = await UdpClient.open();
  t.after(() => c.close());
  const req = buildAccessRequest({ secret: s.secret, userName: 'carol', password: '' });
  const reply = await c.request(req, s.authPort);
  assert.equal(reply && decodeReply(reply.bytes, req, s.secret).packet.code, Code.AccessReject);
  assert.equal(s.logs.audits('carol')[0]?.reason, 'no_password');
  assert.doesNotMatch(slapd.log().slice(before), /BIND dn="uid=carol/);

  // The backend on its own, template mode: no connection at all for an empty password.
  const ff = ldapFirstFactor(ldapConfig({ bind_dn_template: `uid={user},ou=people,${SUFFIX}`, search: undefined }), createLogger('silent'));
  const mark = slapd.log().length;
  assert.deepEqual(await ff.check('carol', '', undefined), { kind: 'reject', reason: 'no_password' });
  assert.doesNotMatch(slapd.log().slice(mark), /BIND/);
  // What the trap would have done: this slapd accepts a DN with an empty password (an unauthenticated bind).
  const raw = new Client({ url: slapd.url });
  await raw.bind(`uid=carol,ou=people,${SUFFIX}`, '');
  await raw.unbind();
});

test('directory groups choose the method: none, challenge, deny', async (t) => {
  const s = await server(t, searchConfig());
  const r1 = await ask(s, { 'User-Name': 'carol', 'User-Password': PW.carol });
  assert.equal(r1.code, 'Access-Accept', r1.stdout);
  assert.deepEqual(r1.attributes['PaloAlto-User-Group'], ['svc']);
  assert.equal(s.logs.audits('carol')[0]?.reason, 'method_none');

  const bob = await enrollTotp(s.store, 'bob');
  const c = await ask(s, { 'User-Name': 'bob', 'User-Password': PW.bob });
  assert.equal(c.code, 'Access-Challenge', c.stdout);
  const state = c.attributes['State']![0]!;
  const r2 = await ask(s, { 'User-Name': 'bob', 'User-Password': bob.codeAt(s.clock.now()), State: state });
  assert.equal(r2.code, 'Access-Accept', r2.stdout);
  assert.deepEqual(r2.attributes['Fortinet-Group-Name'], ['contractors']);

  const r3 = await ask(s, { 'User-Name': 'dave', 'User-Password': PW.dave });
  assert.equal(r3.code, 'Access-Reject');
  assert.equal(s.logs.audits('dave')[0]?.reason, 'method_deny');
});

test('bind_dn_template mode: memberOf read with the user bind gives reply attributes; DN specials are escaped', async (t) => {
  const s = await server(t, { type: 'ldap', url: slapd.ldapsUrl, ca_file: slapd.caFile, bind_dn_template: `uid={user},ou=people,${SUFFIX}` });
  const alice = await enrollTotp(s.store, 'alice');
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PW.alice + alice.codeAt(s.clock.now()) });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.deepEqual(r.attributes['Filter-Id'], ['admins']);
  assert.equal((await ask(s, { 'User-Name': 'alice', 'User-Password': 'nope' + alice.codeAt(s.clock.now()) })).code, 'Access-Reject');
  await enrollTotp(s.store, 'alice,ou=people');
  const inj = await ask(s, { 'User-Name': 'alice,ou=people', 'User-Password': PW.alice + alice.codeAt(s.clock.now()) });
  assert.equal(inj.code, 'Access-Reject');
});

test('group search instead of memberOf (groupOfNames member={dn})', async (t) => {
  const s = await server(t, searchConfig({ groups: { search: { base: `ou=groups,${SUFFIX}`, filter: '(&(objectClass=groupOfNames)(member={dn}))' } } }));
  const r = await ask(s, { 'User-Name': 'carol', 'User-Password': PW.carol });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.deepEqual(r.attributes['PaloAlto-User-Group'], ['svc']);
});

test('LDAP down: clear reason in the log, Access-Reject (even with failmode safe), and failover to the next URL', async (t) => {
  const dead = await freeTcpPort();
  for (const failmode of ['secure', 'safe']) {
    const s = await server(t, searchConfig({ url: `ldap://127.0.0.1:${dead}` }), { mfa: { default_method: 'totp', failmode } });
    const alice = await enrollTotp(s.store, 'alice');
    const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PW.alice + alice.codeAt(s.clock.now()) });
    assert.equal(r.code, 'Access-Reject', `failmode ${failmode}`);
    assert.match(r.attributes['Reply-Message']?.join('') ?? '', /cannot check passwords/);
    assert.equal(s.logs.audits('alice')[0]?.reason, 'first_factor_unavailable');
    const line = s.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('no LDAP server could be used'))[0];
    assert.match(String(line?.reason), new RegExp(`ldap://127.0.0.1:${dead}: .*ECONNREFUSED`));
  }
  const s = await server(t, searchConfig({ url: [`ldap://127.0.0.1:${dead}`, slapd.url] }));
  const alice = await enrollTotp(s.store, 'alice');
  const r = await ask(s, { 'User-Name': 'alice', 'User-Password': PW.alice + alice.codeAt(s.clock.now()) });
  assert.equal(r.code, 'Access-Accept', r.stdout);
  assert.ok(s.logs.filter((l) => l.ldap === `ldap://127.0.0.1:${dead}`).length > 0, 'the failed URL is logged');
});

test('StartTLS with a CA that did not sign the server certificate is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-otherca-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const other = makeTlsFiles(dir);
  const logs = new LogCapture();
  const ff = ldapFirstFactor(ldapConfig({ ca_file: other.ca, search: undefined, bind_dn_template: `uid={user},ou=people,${SUFFIX}` }), createLogger('info', logs));
  const r = await ff.check('alice', PW.alice, undefined);
  assert.equal(r.kind, 'unavailable');
  assert.match(logs.lines.join('\n'), /StartTLS failed/);
  // And with the right CA it works.
  const good = ldapFirstFactor(ldapConfig({ bind_dn_template: `uid={user},ou=people,${SUFFIX}`, search: undefined }), createLogger('silent'));
  assert.equal((await good.check('alice', PW.alice, undefined)).kind, 'accept');
});

function ldapConfig(over: Record<string, unknown>): LdapFirstFactorConfig {
  const ff = { ...searchConfig(), ...over };
  const parsed = configSchema.parse({ listen: { auth: '127.0.0.1:0' }, clients: [{ name: 'x', address: '127.0.0.1', secret: 'x' }], first_factor: ff });
  return parsed.first_factor as LdapFirstFactorConfig;
}
