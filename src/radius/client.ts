// Upstream RADIUS client: identifier allocation, retransmission and timeout, failover between servers
// in order, and verification of every response (authenticator, and Message-Authenticator required on
// Access-* responses: BlastRADIUS, CVE-2024-3596). Protocol only: knows nothing of users or MFA.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { hidePassword, verifyResponse } from './crypto.js';
import { Attr, Code, decodePacket, encodeAttribute, HEADER_LENGTH, type RadiusPacket } from './packet.js';

export interface UpstreamServer {
  host: string;
  port: number;
  secret: Buffer;
  /** Access-* replies must carry a valid Message-Authenticator (default true: BlastRADIUS, CVE-2024-3596). */
  requireMessageAuthenticator?: boolean;
}

export interface UpstreamClientOptions {
  servers: readonly UpstreamServer[];
  /** Wait for one try before retransmitting (same Identifier and Authenticator, RFC 5080 §2.2.1). */
  timeoutMs: number;
  /** Retransmissions per server after the first try. */
  retries: number;
  logger: Logger;
  /** A server that timed out is tried last for this long. */
  deadTimeMs?: number;
}

export interface OutgoingRequest {
  code: typeof Code.AccessRequest | typeof Code.AccountingRequest;
  /** Encoded attributes (no User-Password, no Message-Authenticator: the client adds those per server). */
  attributes: Buffer;
  /** Cleartext User-Password, hidden per server with its secret (RFC 2865 §5.2). */
  password?: Buffer;
}

export type ExchangeResult =
  /** requestAuthenticator and secret: what the server hid Tunnel-Password and MS-MPPE keys with (RFC 2548 §2.4.2). */
  | { kind: 'response'; packet: RadiusPacket; server: string; requestAuthenticator: Buffer; secret: Buffer }
  | { kind: 'no_response'; detail: string };

interface Pending {
  server: UpstreamServer;
  authenticator: Buffer;
  code: number;
  resolve: (packet: RadiusPacket | 'unverified') => void;
  badResponses: number;
}

const DEFAULT_DEAD_TIME_MS = 30_000;

export function serverName(s: UpstreamServer): string {
  return isIPv6(s.host) ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

/** Encodes a request for one server: Access-Request with Message-Authenticator first; Accounting-Request signed per RFC 2866. */
export function encodeRequest(req: OutgoingRequest, identifier: number, server: UpstreamServer, authenticator: Buffer): Buffer {
  const isAccess = req.code === Code.AccessRequest;
  const parts: Buffer[] = [];
  if (isAccess) parts.push(encodeAttribute(Attr.MessageAuthenticator, Buffer.alloc(16)));
  parts.push(req.attributes);
  if (req.password) parts.push(encodeAttribute(Attr.UserPassword, hidePassword(req.password, server.secret, authenticator)));
  const body = Buffer.concat(parts);
  const length = HEADER_LENGTH + body.length;
  if (length > 4096) throw new RangeError(`request would be ${length} octets; RADIUS allows 4096`);
  const out = Buffer.allocUnsafe(length);
  out[0] = req.code;
  out[1] = identifier;
  out.writeUInt16BE(length, 2);
  if (isAccess) authenticator.copy(out, 4);
  else out.fill(0, 4, 20); // RFC 2866 §3: MD5 over the packet with 16 zero octets as Authenticator
  body.copy(out, HEADER_LENGTH);
  if (isAccess) {
    // RFC 3579 §3.2: HMAC-MD5 over the whole packet with the Message-Authenticator value zeroed.
    createHmac('md5', server.secret).update(out).digest().copy(out, HEADER_LENGTH + 2);
  } else {
    createHash('md5').update(out).update(server.secret).digest().copy(out, 4);
  }
  return out;
}

/** One socket per address family; 256 Identifiers per server. Never throws for what a server sends. */
export class UpstreamClient {
  private readonly sockets = new Map<'udp4' | 'udp6', Socket>();
  private readonly pending = new Map<string, Map<number, Pending>>();
  private readonly nextId = new Map<string, number>();
  private readonly deadUntil = new Map<string, number>();
  private closed = false;

  constructor(private readonly options: UpstreamClientOptions) {}

  /** Tries each server in order (recently dead ones last), each `1 + retries` times. */
  async exchange(req: OutgoingRequest): Promise<ExchangeResult> {
    const failures: string[] = [];
    for (const server of this.ordered()) {
      const name = serverName(server);
      const r = await this.tryServer(req, server);
      if (r.kind === 'response') {
        this.deadUntil.delete(name);
        return { kind: 'response', packet: r.packet, server: name, requestAuthenticator: r.authenticator, secret: server.secret };
      }
      failures.push(`${name}: ${r.detail}`);
      this.deadUntil.set(name, Date.now() + (this.options.deadTimeMs ?? DEFAULT_DEAD_TIME_MS));
      this.options.logger.warn({ upstream: name, detail: r.detail }, `upstream RADIUS server ${name} did not answer: ${r.detail}`);
    }
    return { kind: 'no_response', detail: failures.join('; ') };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const byId of this.pending.values()) for (const p of byId.values()) p.resolve('unverified');
    await Promise.all([...this.sockets.values()].map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.sockets.clear();
  }

  private ordered(): UpstreamServer[] {
    const now = Date.now();
    const alive = this.options.servers.filter((s) => (this.deadUntil.get(serverName(s)) ?? 0) <= now);
    const dead = this.options.servers.filter((s) => !alive.includes(s));
    return [...alive, ...dead];
  }

  private async tryServer(req: OutgoingRequest, server: UpstreamServer): Promise<{ kind: 'response'; packet: RadiusPacket; authenticator: Buffer } | { kind: 'failed'; detail: string }> {
    if (this.closed) return { kind: 'failed', detail: 'client closed' };
    const name = serverName(server);
    const id = this.allocateId(name);
    if (id === undefined) return { kind: 'failed', detail: '256 requests already in flight' };
    const authenticator = randomBytes(16);
    let bytes: Buffer;
    try {
      bytes = encodeRequest(req, id, server, authenticator);
    } catch (err) {
      this.pending.get(name)!.delete(id);
      return { kind: 'failed', detail: (err as Error).message };
    }
    const socket = this.socketFor(server.host);
    let timer: NodeJS.Timeout | undefined;
    const entry: Pending = { server, authenticator, code: req.code, resolve: () => {}, badResponses: 0 };
    const answered = new Promise<RadiusPacket | 'unverified'>((resolve) => (entry.resolve = resolve));
    this.pending.get(name)!.set(id, entry);
    try {
      for (let attempt = 0; attempt <= this.options.retries && !this.closed; attempt++) {
        socket.send(bytes, server.port, server.host);
        const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.options.timeoutMs)));
        const r = await Promise.race([answered, timedOut]);
        clearTimeout(timer);
        if (r === 'unverified') break;
        if (r !== 'timeout') return { kind: 'response', packet: r, authenticator };
      }
    } finally {
      this.pending.get(name)!.delete(id);
    }
    const tries = this.options.retries + 1;
    const detail =
      entry.badResponses > 0
        ? `${entry.badResponses} response(s) failed verification (wrong shared secret, or no Message-Authenticator); no valid answer after ${tries} tries`
        : `no answer after ${tries} tries of ${this.options.timeoutMs} ms (server down, or a wrong shared secret: servers silently drop requests whose Message-Authenticator does not verify)`;
    return { kind: 'failed', detail };
  }

  private allocateId(name: string): number | undefined {
    let byId = this.pending.get(name);
    if (!byId) this.pending.set(name, (byId = new Map()));
    if (byId.size >= 256) return undefined;
    let id = this.nextId.get(name) ?? randomBytes(1)[0]!;
    while (byId.has(id)) id = (id + 1) & 0xff;
    this.nextId.set(name, (id + 1) & 0xff);
    return id;
  }

  private socketFor(host: string): Socket {
    const type = isIPv6(host) ? 'udp6' : 'udp4';
    let socket = this.sockets.get(type);
    if (socket) return socket;
    socket = createSocket({ type });
    socket.on('message', (msg, rinfo) => this.receive(msg, rinfo.address, rinfo.port));
    socket.on('error', (err) => this.options.logger.error({ err }, 'upstream RADIUS socket error'));
    socket.unref();
    this.sockets.set(type, socket);
    return socket;
  }

  private receive(msg: Buffer, address: string, port: number): void {
    const decoded = decodePacket(msg);
    if (!decoded.ok) return;
    const packet = decoded.packet;
    const byName = this.pending.get(address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);
    const entry = byName?.get(packet.identifier);
    // A reply from an address we did not send to, or for an Identifier not in flight: silently discarded.
    if (!entry || !isReplyTo(entry.code, packet.code)) return;
    const name = serverName(entry.server);
    // RFC 2865 §3: a response whose authenticator does not verify is silently discarded.
    if (!verifyResponse(packet, entry.authenticator, entry.server.secret)) {
      entry.badResponses++;
      this.options.logger.warn({ upstream: name, id: packet.identifier }, `response from upstream RADIUS server ${name} does not verify: wrong shared secret? dropped`);
      return;
    }
    // BlastRADIUS: an Access-* response without Message-Authenticator may be forged; drop it.
    if (entry.code === Code.AccessRequest && packet.messageAuthenticatorOffset < 0 && entry.server.requireMessageAuthenticator !== false) {
      entry.badResponses++;
      this.options.logger.warn({ upstream: name, id: packet.identifier }, `response from upstream RADIUS server ${name} has no Message-Authenticator (BlastRADIUS, CVE-2024-3596): dropped; upgrade it or enable Message-Authenticator in its replies`);
      return;
    }
    entry.resolve(packet);
  }
}

function isReplyTo(requestCode: number, code: number): boolean {
  if (requestCode === Code.AccountingRequest) return code === Code.AccountingResponse;
  return code === Code.AccessAccept || code === Code.AccessReject || code === Code.AccessChallenge;
}
