// A raw RADIUS-over-UDP client for what radclient cannot do: exact retransmissions (same Identifier and
// Request Authenticator), byte-level reply checks, malformed datagrams, fuzzing. Codec and crypto come from src/.
import { createHmac, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { hidePassword, verifyResponse } from '../../src/radius/crypto.js';
import { Attr, Code, decodePacket, encodeAttribute, HEADER_LENGTH, type RadiusPacket } from '../../src/radius/packet.js';

export interface AccessRequestParts {
  secret: string | Buffer;
  identifier?: number;
  authenticator?: Buffer;
  userName?: string;
  /** PAP password, hidden per RFC 2865 §5.2 with the secret and authenticator. */
  password?: string | Buffer;
  /** Extra attributes in order, after User-Name and User-Password. */
  attributes?: readonly [type: number, value: Buffer | string][];
  /** Add and compute Message-Authenticator (last attribute). Default true. */
  messageAuthenticator?: boolean;
}

/** Encodes a signed Access-Request. */
export function buildAccessRequest(p: AccessRequestParts): Buffer {
  const secret = Buffer.isBuffer(p.secret) ? p.secret : Buffer.from(p.secret, 'utf8');
  const authenticator = p.authenticator ?? randomBytes(16);
  const attrs: Buffer[] = [];
  if (p.userName !== undefined) attrs.push(encodeAttribute(Attr.UserName, p.userName));
  if (p.password !== undefined) {
    const pw = Buffer.isBuffer(p.password) ? p.password : Buffer.from(p.password, 'utf8');
    attrs.push(encodeAttribute(Attr.UserPassword, hidePassword(pw, secret, authenticator)));
  }
  for (const [type, value] of p.attributes ?? []) attrs.push(encodeAttribute(type, value));
  const withMa = p.messageAuthenticator ?? true;
  if (withMa) attrs.push(encodeAttribute(Attr.MessageAuthenticator, Buffer.alloc(16)));
  const body = Buffer.concat(attrs);
  const out = Buffer.alloc(HEADER_LENGTH + body.length);
  out[0] = Code.AccessRequest;
  out[1] = p.identifier ?? randomBytes(1)[0]!;
  out.writeUInt16BE(out.length, 2);
  authenticator.copy(out, 4);
  body.copy(out, HEADER_LENGTH);
  if (withMa) signMessageAuthenticator(out, out.length - 18, secret);
  return out;
}

/** RFC 3579 §3.2 (request side): HMAC-MD5 over the packet with the Message-Authenticator value zeroed, written in place. */
export function signMessageAuthenticator(packet: Buffer, offset: number, secret: Buffer): void {
  packet.fill(0, offset + 2, offset + 18);
  createHmac('md5', secret).update(packet).digest().copy(packet, offset + 2);
}

export interface DecodedReply {
  packet: RadiusPacket;
  /** Response Authenticator and Message-Authenticator both verify against the request and secret. */
  verified: boolean;
}

export function decodeReply(bytes: Buffer, request: Buffer, secret: string | Buffer): DecodedReply {
  const r = decodePacket(bytes);
  if (!r.ok) throw new Error(`reply does not decode: ${r.reason}`);
  const s = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8');
  return { packet: r.packet, verified: verifyResponse(r.packet, request.subarray(4, 20), s) };
}

export interface Received {
  bytes: Buffer;
  /** performance.now() at arrival. */
  at: number;
}

/** One UDP socket on loopback; every datagram it receives is kept in order. */
export class UdpClient {
  readonly received: Received[] = [];
  private waiters: (() => void)[] = [];
  private cursor = 0;

  private constructor(readonly socket: Socket) {
    socket.on('message', (bytes) => {
      this.received.push({ bytes, at: performance.now() });
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  static async open(host = '127.0.0.1'): Promise<UdpClient> {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new UdpClient(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Resolves once the datagram has been handed to the kernel. */
  send(datagram: Buffer, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(datagram, port, host, (err) => (err ? reject(err) : resolve())));
  }

  /** The next datagram not yet returned by next(), or undefined after `timeoutMs`. */
  async next(timeoutMs = 2000): Promise<Received | undefined> {
    const deadline = performance.now() + timeoutMs;
    while (this.cursor >= this.received.length) {
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.received[this.cursor++];
  }

  /** Removes and returns everything received so far (read or not): next() then waits for what arrives later. */
  takeReceived(): Received[] {
    const all = this.received.splice(0);
    this.cursor = 0;
    return all;
  }

  /** Sends one datagram and waits for the next reply. */
  async request(datagram: Buffer, port: number, host = '127.0.0.1', timeoutMs = 2000): Promise<Received | undefined> {
    await this.send(datagram, port, host);
    return this.next(timeoutMs);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
