// RADIUS over TLS (RFC 6614): a TLS listener that frames RADIUS packets on the stream by their Length
// field, matches the client by its verified certificate and hands each packet to the same request path
// as UDP. Many requests are in flight per connection; replies go back in the order they are decided.
import { isIPv6 } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { normalizeAddress, type RadiusClient, type TlsClientTable } from './clients.js';
import { Code, MAX_PACKET_LENGTH, MIN_PACKET_LENGTH } from './packet.js';
import { Peer } from './udp-socket.js';

export interface RadsecTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

export interface RadsecListenerOptions {
  host: string;
  port: number;
  tls: RadsecTls;
  /** Read on every connection, so a reload takes effect for new connections. */
  clients: () => TlsClientTable;
  handshakeTimeoutMs: number;
  /** No traffic and nothing being decided for this long: the connection is closed. */
  idleTimeoutMs: number;
  /** A packet begun must be complete within this (slowloris). */
  frameTimeoutMs: number;
  maxConnections: number;
  onFrame: (frame: Buffer, client: RadiusClient, peer: Peer, connection: RadsecConnection) => void;
  /** A connection refused or closed for a reason worth counting (a fixed set of names). */
  onRefused: (reason: string, from: string, message: string) => void;
}

/** A request left unanswered this long (dropped, or a push held to its limit) no longer keeps the connection open. */
const OUTSTANDING_LIMIT_MS = 15 * 60_000;
/** Replies queued to a peer that does not read: past this the connection is closed (memory bound). */
const MAX_WRITE_BUFFER = 1024 * 1024;

/** One TLS connection from a known client: the reply side of every request read from it. */
export class RadsecConnection {
  private pending: Buffer | undefined;
  private frameTimer: NodeJS.Timeout | undefined;
  /** Requests read and not yet answered, by Identifier (a connection carries at most 256 at once). */
  private readonly outstanding = new Map<number, number>();

  constructor(
    private readonly socket: TLSSocket,
    readonly client: RadiusClient,
    readonly peer: Peer,
    private readonly options: RadsecListenerOptions,
  ) {
    socket.setNoDelay(true);
    socket.setTimeout(options.idleTimeoutMs);
    socket.on('timeout', () => this.idle());
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('close', () => clearTimeout(this.frameTimer));
    socket.on('error', () => socket.destroy());
  }

  /** Same shape as UdpSocket.send: the server answers TLS and UDP requests alike. */
  send(bytes: Buffer, _peer: Peer): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.outstanding.delete(bytes[1]!);
    this.socket.write(bytes);
    if (this.socket.writableLength > MAX_WRITE_BUFFER) this.refuse('write_backlog', 'client does not read its replies: connection closed');
  }

  private receive(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    // Every pass consumes one whole packet of at least 20 octets: bounded by the chunk's size.
    while (buf.length >= 4) {
      const length = buf.readUInt16BE(2);
      // RFC 6614 §2.5: a packet that cannot be framed ends the connection (there is no resynchronising).
      if (length < MIN_PACKET_LENGTH || length > MAX_PACKET_LENGTH) return this.refuse('bad_frame_length', `RADIUS Length ${length} on the TLS stream: connection closed`);
      if (buf.length < length) break;
      const frame = buf.subarray(0, length);
      buf = buf.subarray(length);
      if (frame[0] === Code.AccessRequest || frame[0] === Code.AccountingRequest) {
        if (this.outstanding.size >= 256 && !this.outstanding.has(frame[1]!)) this.prune();
        this.outstanding.set(frame[1]!, performance.now());
      }
      this.options.onFrame(frame, this.client, this.peer, this);
      if (this.socket.destroyed) return;
    }
    // What is left is less than one packet (at most 4095 octets): memory per connection is bounded.
    if (buf.length > 0) {
      this.pending = buf;
      this.frameTimer ??= setTimeout(() => this.refuse('frame_timeout', 'a RADIUS packet was not completed in time (slowloris?): connection closed'), this.options.frameTimeoutMs);
    } else if (this.frameTimer) {
      clearTimeout(this.frameTimer);
      this.frameTimer = undefined;
    }
  }

  private idle(): void {
    this.prune();
    // A request held for a phone keeps a quiet connection open.
    if (this.outstanding.size > 0) this.socket.setTimeout(this.options.idleTimeoutMs);
    else this.socket.end();
  }

  private prune(): void {
    const limit = performance.now() - OUTSTANDING_LIMIT_MS;
    for (const [id, since] of this.outstanding) if (since < limit) this.outstanding.delete(id);
  }

  private refuse(reason: string, message: string): void {
    this.options.onRefused(reason, peerName(this.peer), `${message} (client ${this.client.name})`);
    this.socket.destroy();
  }
}

function peerName(p: { address: string; port: number }): string {
  return isIPv6(p.address) ? `[${p.address}]:${p.port}` : `${p.address}:${p.port}`;
}

/** The TLS server of one listen.radsec address: TLS 1.2+, client certificates required and verified against `ca`. */
export class RadsecListener {
  private readonly server: Server;
  private readonly sockets = new Set<TLSSocket>();

  constructor(private readonly options: RadsecListenerOptions) {
    this.server = createServer({
      cert: options.tls.cert,
      key: options.tls.key,
      ca: options.tls.ca,
      // RFC 6614 §2.3: mutual authentication; a certificate that does not chain to `ca` fails the handshake.
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      handshakeTimeout: options.handshakeTimeoutMs,
    });
    this.server.maxConnections = options.maxConnections;
    this.server.on('secureConnection', (socket) => this.accept(socket));
    this.server.on('tlsClientError', (err, socket) => {
      options.onRefused('tls_handshake_failed', peerName({ address: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0 }), `TLS handshake failed: ${err.message}`);
      socket.destroy();
    });
  }

  listen(): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        const a = this.server.address() as { address: string; port: number };
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  get connections(): number {
    return this.sockets.size;
  }

  private accept(socket: TLSSocket): void {
    const address = normalizeAddress(socket.remoteAddress ?? '');
    const from = peerName({ address, port: socket.remotePort ?? 0 });
    const cert = socket.getPeerCertificate();
    const cn = cert?.subject?.CN;
    const client =
      socket.authorized && cert?.fingerprint256
        ? this.options.clients().match({ commonNames: cn === undefined ? [] : Array.isArray(cn) ? cn : [cn], fingerprint256: cert.fingerprint256 }, address)
        : undefined;
    if (!client) {
      socket.on('error', () => {});
      this.options.onRefused('unknown_tls_client', from, `TLS client certificate (CN ${JSON.stringify(cn)}, sha256 ${cert?.fingerprint256}) matches no client with tls: connection closed`);
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    const peer = Peer.fromText(address, socket.remotePort ?? 0);
    new RadsecConnection(socket, client, peer, this.options);
  }
}
