// The real eapol_test (Debian eapoltest, wpa_supplicant's test client) as an EAP peer + NAS: it runs
// PEAP or EAP-TTLS over RADIUS to the given port and checks the MPPE keys in the Access-Accept against
// the ones it derived itself ("MPPE keys OK").
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const EAPOL_TEST = '/usr/bin/eapol_test';

export interface EapolOptions {
  port: number;
  secret: string;
  method: 'PEAP' | 'TTLS';
  /** The inner identity (PEAP/TTLS phase 2). */
  identity: string;
  /** The outer identity; default "anonymous". */
  anonymousIdentity?: string;
  password: string;
  /** CA that signed the upstream's EAP server certificate. */
  ca: string;
  /** eapol_test's overall timeout in seconds (default 15). */
  timeout?: number;
}

export interface EapolResult {
  success: boolean;
  /** eapol_test compared the MPPE keys it derived with those in the Access-Accept: "MPPE keys OK: 1 mismatch: 0". */
  mppeKeysOk: boolean;
  output: string;
}

export function eapol(o: EapolOptions): Promise<EapolResult> {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-eapol-'));
  const conf = join(dir, 'eapol.conf');
  const phase2 = o.method === 'PEAP' ? 'auth=MSCHAPV2' : 'auth=PAP';
  writeFileSync(
    conf,
    `network={
	ssid="radius-mfa-test"
	key_mgmt=WPA-EAP
	eap=${o.method}
	identity="${o.identity}"
	anonymous_identity="${o.anonymousIdentity ?? 'anonymous'}"
	password="${o.password}"
	ca_cert="${o.ca}"
	phase2="${phase2}"
	phase1="tls_disable_tlsv1_3=1"
}
`,
  );
  const timeout = o.timeout ?? 15;
  const args = ['-c', conf, '-a', '127.0.0.1', '-p', String(o.port), '-s', o.secret, '-t', String(timeout), '-r', '0', '-N', '30:s:radius-mfa-test', '-N', '61:d:19'];
  return new Promise((resolve) => {
    execFile(EAPOL_TEST, args, { timeout: (timeout + 10) * 1000, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      rmSync(dir, { recursive: true, force: true });
      const output = stdout + stderr;
      const success = !err && /^SUCCESS$/m.test(output);
      resolve({ success, mppeKeysOk: /MPPE keys OK: 1 +mismatch: 0/.test(output), output });
    });
  });
}
