// One Access-Request as a NAS sends it: the same datagram again after each timeout, up to `tries`
// times. Start-up polls with it (servers.ts: no sleeps); the spray bench's real user logs in with it.
import { createSocket } from 'node:dgram';
import { randomFillSync } from 'node:crypto';
import { hmacMd5Key } from '../src/radius/md5.js';
import { packetLength, verifyResponseAuthenticator, writeAccessRequest, writeStatusServer } from './packet.js';

/** Resolves to the reply code (Response Authenticator verified) and the time from the first send, or code null after the last try; `status`: a Status-Server (RFC 5997) instead. */
export function probeAccess(o: { port: number; secret: string; userName: string; password: string; timeoutMs?: number; tries?: number; callingStation?: string; status?: boolean }): Promise<{ code: number | null; ms: number; tries: number }> {
  const secret = Buffer.from(o.secret);
  const buf = Buffer.alloc(4096);
  randomFillSync(buf, 4, 16);
  const id = buf[4]!;
  const len = o.status ? writeStatusServer(buf, id, hmacMd5Key(secret)) : writeAccessRequest(buf, id, Buffer.from(o.userName), Buffer.from(o.password),
    Buffer.alloc(0), Buffer.from('bench-probe'), secret, hmacMd5Key(secret), o.callingStation === undefined ? undefined : Buffer.from(o.callingStation));
  const sock = createSocket('udp4');
  const t0 = performance.now();
  let tries = 0;
  let timer: NodeJS.Timeout | undefined;
  return new Promise((resolve) => {
    const done = (code: number | null) => {
      clearTimeout(timer);
      sock.close();
      resolve({ code, ms: performance.now() - t0, tries });
    };
    const send = () => {
      if (tries === (o.tries ?? 1)) return done(null);
      tries++;
      sock.send(buf, 0, len, o.port, '127.0.0.1');
      timer = setTimeout(send, o.timeoutMs ?? 500);
    };
    sock.on('error', () => { /* ICMP port unreachable while the server starts: wait for the timeout */ });
    sock.on('message', (msg) => {
      const n = packetLength(msg);
      if (n >= 0 && msg[1] === id && verifyResponseAuthenticator(msg, n, buf, 4, secret)) done(msg[0]!);
    });
    send();
  });
}
