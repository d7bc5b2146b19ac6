/** One-shot Access-Request for readiness checks (no sleeps: poll until a verified reply arrives). */
import { createSocket } from 'node:dgram';
import { randomFillSync } from 'node:crypto';
import { hmacMd5Key } from '../src/radius/md5.js';
import { packetLength, verifyResponseAuthenticator, writeAccessRequest } from './packet.js';

export type ProbeOptions = { host?: string; port: number; secret: string; userName: string; password: string; timeoutMs?: number };

/** Sends one Access-Request; resolves to the reply code (verified Response Authenticator) or null on timeout. */
export function probeAccess(o: ProbeOptions): Promise<number | null> {
  const secret = Buffer.from(o.secret);
  const buf = Buffer.alloc(4096);
  randomFillSync(buf, 4, 16);
  const id = buf[4]!;
  const len = writeAccessRequest(buf, id, Buffer.from(o.userName), Buffer.from(o.password), Buffer.alloc(0),
    Buffer.from('bench-probe'), secret, hmacMd5Key(secret));
  const sock = createSocket('udp4');
  return new Promise((resolve) => {
    const done = (v: number | null) => {
      clearTimeout(timer);
      sock.close();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), o.timeoutMs ?? 500);
    sock.on('error', () => { /* ICMP port unreachable while the server starts: wait for the timeout */ });
    sock.on('message', (msg) => {
      const n = packetLength(msg);
      if (n < 0 || msg[1] !== id || !verifyResponseAuthenticator(msg, n, buf, 4, secret)) return;
      done(msg[0]!);
    });
    sock.send(buf, 0, len, o.port, o.host ?? '127.0.0.1');
  });
}

/** Polls with probeAccess until any verified reply, the process exits, or timeoutMs passes. */
export async function waitForServer(o: Omit<ProbeOptions, 'password'> & { password: () => string; timeoutMs: number; exited: Promise<unknown> }): Promise<boolean> {
  let gone = false;
  void o.exited.then(() => (gone = true));
  const until = Date.now() + o.timeoutMs;
  while (!gone && Date.now() < until) {
    const code = await probeAccess({ ...o, password: o.password(), timeoutMs: 200 });
    if (code !== null) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
