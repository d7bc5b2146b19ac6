// A raw RADIUS-over-UDP client for what radclient cannot do: exact retransmissions (same Identifier and
// Request Authenticator), byte-level reply checks, malformed datagrams, fuzzing. Codec and crypto come from src/.
import { createSocket, type Socket } from 'node:dgram';

export { buildAccessRequest, decodeReply, signMessageAuthenticator, type AccessRequestParts, type DecodedReply } from './radius-request.js';

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
