// Throwaway PKI for TLS tests, made by the real openssl CLI in a temp dir: a CA, a server certificate
// for 127.0.0.1, client certificates by CN, and a second CA nobody trusts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
  /** "AB:CD:..." as node:tls reports it. */
  fingerprint256: string;
}

export interface TestPki {
  dir: string;
  ca: string;
  /** A CA that signed nothing our server trusts. */
  otherCa: string;
  server: CertFiles;
  /** Issues a client certificate with this CN (signed by `ca`, or by `otherCa` when `untrusted`). */
  client(cn: string, opts?: { untrusted?: boolean }): CertFiles;
  remove(): void;
}

function openssl(args: string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function makeCa(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.pem`], dir);
}

function issue(dir: string, ca: string, name: string, cn: string, ext: string): CertFiles {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`], dir);
  const fp = openssl(['x509', '-noout', '-fingerprint', '-sha256', '-in', `${name}.pem`], dir);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`), fingerprint256: fp.trim().split('=')[1]! };
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-pki-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  const server = issue(dir, 'ca', 'server', 'radius-mfa.test', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  let n = 0;
  return {
    dir,
    ca: join(dir, 'ca.pem'),
    otherCa: join(dir, 'other-ca.pem'),
    server,
    client: (cn, opts = {}) => issue(dir, opts.untrusted ? 'other-ca' : 'ca', `client-${n++}`, cn, 'extendedKeyUsage=clientAuth\n'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export function pem(path: string): Buffer {
  return readFileSync(path);
}
