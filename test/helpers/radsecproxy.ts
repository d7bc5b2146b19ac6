// The real radsecproxy (Debian) as a RADIUS/TLS client: radclient talks UDP to it, it talks TLS to us
// with a client certificate. Started in the foreground with a config written to a temp dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeUdpPort } from '../../scripts/engines/ports.js';

export const RADSECPROXY = '/usr/sbin/radsecproxy';

export interface RadsecproxyOptions {
  /** Our RADIUS/TLS port on 127.0.0.1. */
  serverPort: number;
  ca: string;
  cert: string;
  key: string;
  /** Shared secret radclient uses toward radsecproxy. */
  udpSecret: string;
  /** Secret on the TLS hop (default "radsec", RFC 6614 §2.3). */
  tlsSecret?: string;
  /** e.g. "TLS1_2" (radsecproxy can crash when a TLS 1.3 server drops it right after the handshake). */
  tlsVersion?: string;
  statusServer?: boolean;
}

export interface Radsecproxy {
  /** UDP port radclient sends to. */
  port: number;
  output(): string;
  /** Resolves when the output has a line matching `re` (polls every 10 ms, at most `timeoutMs`). */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startRadsecproxy(o: RadsecproxyOptions): Promise<Radsecproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-radsecproxy-'));
  const port = await freeUdpPort();
  const conf = `ListenUDP 127.0.0.1:${port}
LogLevel 4
tls default {
	CACertificateFile ${o.ca}
	CertificateFile ${o.cert}
	CertificateKeyFile ${o.key}
${o.tlsVersion ? `\tTlsVersion ${o.tlsVersion}\n` : ''}}
client nas {
	host 127.0.0.1
	type udp
	secret ${o.udpSecret}
}
server radius-mfa {
	host 127.0.0.1
	port ${o.serverPort}
	type tls
	secret ${o.tlsSecret ?? 'radsec'}
	StatusServer ${o.statusServer ? 'on' : 'off'}
}
realm * {
	server radius-mfa
	accountingServer radius-mfa
}
`;
  writeFileSync(join(dir, 'radsecproxy.conf'), conf);
  const child: ChildProcess = spawn(RADSECPROXY, ['-f', '-d', '4', '-c', join(dir, 'radsecproxy.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const waitForOutput = async (re: RegExp, timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000 && Date.now() < deadline && !exited; i++) {
      if (re.test(output)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    if (!re.test(output)) throw new Error(`radsecproxy output has no ${re} (exited: ${exited}):\n${output}`);
  };
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      await exit;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForOutput(/radsecproxy .*starting|main: entering main loop|listening/i);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, output: () => output, waitForOutput, stop };
}
