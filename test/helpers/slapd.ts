// A real OpenLDAP slapd (Debian `slapd`) for tests: temp dir, slapd.conf, a CA and server certificate
// made with openssl now, ldap:// (StartTLS) and ldaps:// on free loopback ports, memberof overlay,
// seeded with ldapadd. Nothing under /etc/ldap is written; nothing listens beyond 127.0.0.1.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeTcpPort } from '../../scripts/engines/ports.js';

export const SLAPD = '/usr/sbin/slapd';
export const SUFFIX = 'dc=example,dc=com';
export const ADMIN_DN = `cn=admin,${SUFFIX}`;

export interface SlapdUser {
  uid: string;
  password: string;
  mail?: string;
}

export interface Slapd {
  /** ldap://127.0.0.1:port (plain, StartTLS offered) */
  url: string;
  /** ldaps://127.0.0.1:port */
  ldapsUrl: string;
  caFile: string;
  adminPassword: string;
  /** Everything slapd printed at `-d stats`: connections, BINDs, searches. */
  log(): string;
  stop(): Promise<void>;
}

/** Resolves once something accepts TCP on the port; rejects after `timeoutMs`. */
export async function waitForTcp(port: number, timeoutMs: number, exited?: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (exited?.()) throw new Error('process exited before listening');
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nothing listened on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/** A CA and a server certificate for 127.0.0.1/localhost, valid one day. */
export function makeTlsFiles(dir: string): { ca: string; cert: string; key: string } {
  const f = (n: string) => join(dir, n);
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=radius-mfa test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost']);
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  run(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '1', '-extfile', f('ext.cnf')]);
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

function seedLdif(users: readonly SlapdUser[], groups: Record<string, readonly string[]>): string {
  const parts = [
    `dn: ${SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n`,
    `dn: ou=people,${SUFFIX}\nobjectClass: organizationalUnit\nou: people\n`,
    `dn: ou=groups,${SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n`,
    `dn: cn=radius-svc,${SUFFIX}\nobjectClass: person\ncn: radius-svc\nsn: svc\nuserPassword: svc-password\n`,
  ];
  for (const u of users) {
    parts.push(
      `dn: uid=${u.uid},ou=people,${SUFFIX}\nobjectClass: inetOrgPerson\nuid: ${u.uid}\ncn: ${u.uid}\nsn: ${u.uid}\n` +
        `${u.mail ? `mail: ${u.mail}\n` : ''}userPassword: ${u.password}\n`,
    );
  }
  for (const [cn, members] of Object.entries(groups)) {
    const member = members.length ? members.map((m) => `member: uid=${m},ou=people,${SUFFIX}`).join('\n') : `member: cn=radius-svc,${SUFFIX}`;
    parts.push(`dn: cn=${cn},ou=groups,${SUFFIX}\nobjectClass: groupOfNames\ncn: ${cn}\n${member}\n`);
  }
  return parts.join('\n');
}

/** Starts slapd in the foreground (`-d stats`), waits for both ports, seeds the directory. */
export async function startSlapd(opts: { users: readonly SlapdUser[]; groups: Record<string, readonly string[]> }): Promise<Slapd> {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-slapd-'));
  mkdirSync(join(dir, 'db'));
  const tls = makeTlsFiles(dir);
  const adminPassword = 'admin-password';
  const conf = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile ${dir}/slapd.pid
argsfile ${dir}/slapd.args
TLSCACertificateFile ${tls.ca}
TLSCertificateFile ${tls.cert}
TLSCertificateKeyFile ${tls.key}
# The anonymous-bind trap is armed here on purpose: a DN with an empty password "binds".
allow bind_anon_dn
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by * read
database mdb
maxsize 10485760
suffix "${SUFFIX}"
rootdn "${ADMIN_DN}"
rootpw ${adminPassword}
directory ${dir}/db
overlay memberof
`;
  writeFileSync(join(dir, 'slapd.conf'), conf);
  const [port, ldapsPort] = [await freeTcpPort(), await freeTcpPort()];
  const url = `ldap://127.0.0.1:${port}`;
  const ldapsUrl = `ldaps://127.0.0.1:${ldapsPort}`;
  const child: ChildProcess = spawn(SLAPD, ['-f', join(dir, 'slapd.conf'), '-h', `${url}/ ${ldapsUrl}/`, '-d', 'stats'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      await exit;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForTcp(port, 10_000, () => exited);
    await waitForTcp(ldapsPort, 10_000, () => exited);
    execFileSync('ldapadd', ['-x', '-H', url, '-D', ADMIN_DN, '-w', adminPassword], { input: seedLdif(opts.users, opts.groups), stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    await stop();
    throw new Error(`slapd did not start: ${(err as Error).message}\n${output}`, { cause: err });
  }
  return { url, ldapsUrl, caFile: tls.ca, adminPassword, log: () => output, stop };
}
