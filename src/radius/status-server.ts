// RFC 5997 Status-Server: "are you alive?" to a RADIUS server, answered without touching any user.
// Built from the packet codec and crypto; the request is signed like an Access-Request (Message-Authenticator).
import { createHmac, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { verifyResponse } from './crypto.js';
import { Attr, Code, decodePacket, encodeAttribute, HEADER_LENGTH } from './packet.js';

export interface StatusTarget {
  host: string;
  port: number;
  secret: Buffer;
  /** 'auth' expects Access-Accept, 'acct' Accounting-Response (RFC 5997 §3). */
  role: 'auth' | 'acct';
}

export type StatusResult =
  | { kind: 'alive'; ms: number }
  /** Something answered, but the answer does not verify with our secret. */
  | { kind: 'bad_reply'; detail: string }
  | { kind: 'no_answer'; tries: number; timeoutMs: number }
  | { kind: 'error'; detail: string };

/** Encodes a Status-Server request: random Request Authenticator and Message-Authenticator (RFC 5997 §3, RFC 3579 §3.2). */
export function encodeStatusServer(identifier: number, authenticator: Buffer, secret: Buffer): Buffer {
  const ma = encodeAttribute(Attr.MessageAuthenticator, Buffer.alloc(16));
  const out = Buffer.alloc(HEADER_LENGTH + ma.length);
  out[0] = Code.StatusServer;
  out[1] = identifier;
  out.writeUInt16BE(out.length, 2);
  authenticator.copy(out, 4);
  ma.copy(out, HEADER_LENGTH);
  createHmac('md5', secret).update(out).digest().copy(out, HEADER_LENGTH + 2);
  return out;
}

/** Sends Status-Server `tries` times, `timeoutMs` apart, and reports the first verified answer. */
export function probeStatusServer(target: StatusTarget, timeoutMs = 2000, tries = 2): Promise<StatusResult> {
  const authenticator = randomBytes(16);
  const identifier = randomBytes(1)[0]!;
  const bytes = encodeStatusServer(identifier, authenticator, target.secret);
  const expected = target.role === 'auth' ? Code.AccessAccept : Code.AccountingResponse;
  const socket = createSocket(isIPv6(target.host) ? 'udp6' : 'udp4');
  const started = performance.now();
  return new Promise<StatusResult>((resolve) => {
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    let bad: string | undefined;
    const finish = (r: StatusResult) => {
      clearTimeout(timer);
      socket.close();
      resolve(r);
    };
    const send = () => {
      if (sent === tries) return finish(bad ? { kind: 'bad_reply', detail: bad } : { kind: 'no_answer', tries, timeoutMs });
      sent++;
      socket.send(bytes);
      timer = setTimeout(send, timeoutMs);
    };
    // Connected, so an ICMP port unreachable comes back as ECONNREFUSED: nothing listens there.
    socket.on('error', (err) => finish({ kind: 'error', detail: (err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'port unreachable: nothing listens on that UDP port' : err.message }));
    socket.on('message', (msg) => {
      const d = decodePacket(msg);
      if (!d.ok || d.packet.identifier !== identifier) return;
      if (d.packet.code !== expected) {
        bad = `answered with code ${d.packet.code} instead of ${expected}`;
        return;
      }
      if (!verifyResponse(d.packet, authenticator, target.secret)) {
        bad = 'the reply does not verify with our shared secret';
        return;
      }
      finish({ kind: 'alive', ms: Math.round(performance.now() - started) });
    });
    socket.connect(target.port, target.host, () => send());
  });
}
