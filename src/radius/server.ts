// The server side of RADIUS over UDP and over TLS (radsec.ts): client lookup, authenticator checks,
// duplicate handling, replies. Both transports meet in handle(): one request path, one dedupe.
// It hands a protocol-level AccessRequest to a handler and knows nothing of users or second factors.
import type { Logger } from 'pino';
import { rateLimitedWarn } from '../shared/rate-limited.js';
import type { ClientTable, RadiusClient, TlsClientTable } from './clients.js';
import { encodeResponse, revealPassword, verifyAccountingRequestAuthenticator, verifyRequestMessageAuthenticator } from './crypto.js';
import { DedupeCache } from './dedupe.js';
import { Attr, Code, decodePacket, findAttribute, findText, HEADER_LENGTH, MAX_PACKET_LENGTH, type RadiusPacket } from './packet.js';
import { RadsecListener, type RadsecTls } from './radsec.js';
import { UdpSocket, type Peer } from './udp-socket.js';

/** Where replies go: a UDP socket (to the datagram's source) or a RADIUS/TLS connection. */
export interface ReplySink {
  send(bytes: Buffer, peer: Peer): void;
}

export interface AccessRequest {
  /** Monotonic request number: every log line about this request carries it. */
  q: number;
  client: RadiusClient;
  packet: RadiusPacket;
  source: Peer;
  receivedAt: number;
  /** performance.now() at reception: orders this request against other events, whatever the clock says. */
  arrival: number;
  userName: string | undefined;
  /** PAP User-Password, revealed; undefined when the request has none (CHAP, EAP). */
  password: Buffer | undefined;
  state: Buffer | undefined;
}

export interface AccessReply {
  code: typeof Code.AccessAccept | typeof Code.AccessReject | typeof Code.AccessChallenge;
  /** Encoded attributes; Message-Authenticator and Proxy-State are added by the server. */
  attributes: Buffer;
  /** Hold the reply this long (reject delay) without blocking anything else. */
  delayMs?: number;
}

/** Where the answer to one Access-Request goes, now or when a phone answers; exactly one of the two is called. */
export interface AccessResponder {
  /** null = no reply (the client will retransmit and the request is decided again). */
  reply(answer: AccessReply | AccessDrop | null): void;
  /** The handler failed (a bug): logged, and no reply is sent. */
  fail(err: unknown): void;
}

/** Not answered on purpose (shed under load): counted as a dropped datagram with this reason; the NAS retries. */
export interface AccessDrop {
  drop: string;
}

/** Decides the request and answers through `respond`, at once or later; a throw fails it as respond.fail does. */
export type AccessHandler = (request: AccessRequest, respond: AccessResponder) => void;

/** What a ReplyTarget hands its answer to: the server's, made once. */
interface Answers {
  finish(target: ReplyTarget, answer: AccessReply | AccessDrop | null): void;
  failed(target: ReplyTarget, err: unknown): void;
}

/**
 * What answering a request needs, kept while it is decided instead of the request: a request held for
 * a phone must not keep its decoded packet alive. It is the handler's responder itself: an object with
 * methods, not a promise and two callbacks per request (10,000 held requests keep 10,000 of these).
 */
class ReplyTarget implements AccessResponder {
  constructor(
    private readonly answers: Answers,
    readonly q: number,
    readonly client: RadiusClient,
    readonly source: Peer,
    readonly socket: ReplySink,
    /** Names the request's dedupe entry. */
    readonly ticket: number,
    readonly identifier: number,
    readonly proxyStates: readonly Buffer[],
  ) {}

  reply(answer: AccessReply | AccessDrop | null): void {
    this.answers.finish(this, answer);
  }

  fail(err: unknown): void {
    this.answers.failed(this, err);
  }
}

export interface AccountingRequest {
  q: number;
  client: RadiusClient;
  packet: RadiusPacket;
  source: Peer;
}

export interface ListenAddress {
  host: string;
  port: number;
}

export interface RadsecOptions {
  listen: readonly ListenAddress[];
  tls: RadsecTls;
  /** Read on every connection. */
  clients: () => TlsClientTable;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
}

export interface RadiusServerOptions {
  auth: readonly ListenAddress[];
  acct?: readonly ListenAddress[];
  /** RADIUS over TLS (RFC 6614): authentication, accounting and Status-Server on one connection. */
  radsec?: RadsecOptions;
  /** Read on every datagram, so a reload takes effect at once. */
  clients: () => ClientTable;
  dedupe: { windowMs: number; maxEntries: number };
  onAccess: AccessHandler;
  onAccounting: (request: AccountingRequest) => void;
  /**
   * Attributes of the answer to Status-Server (RFC 5997 allows a Reply-Message in it), e.g. what is
   * degraded; absent = an empty answer. A rejection is a bug: logged, and that probe gets no answer.
   */
  statusAttributes?: () => Promise<Buffer>;
  logger: Logger;
  now: () => number;
}

type Role = 'auth' | 'acct' | 'radsec';

const IN_FLIGHT_LIMIT_MS = 15 * 60_000;
const RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024;
/** Dedupe keys of TLS listeners start here (UDP sockets count from 0). */
const RADSEC_LISTENER_BASE = 128;
const RADSEC_MAX_CONNECTIONS = 4096;
/** The answered request's Request Authenticator, read back from its dedupe entry just before encoding (synchronous). */
const REQUEST_AUTHENTICATOR = Buffer.alloc(16);

export class RadiusServer {
  private readonly sockets: UdpSocket[] = [];
  private readonly radsec: RadsecListener[] = [];
  private readonly dedupe: DedupeCache;
  private readonly dropped: ReturnType<typeof rateLimitedWarn>;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly answers: Answers = { finish: (target, answer) => this.finish(target, answer), failed: (target, err) => this.failed(target, err) };
  private nextQ = 1;
  /** Set by close(): decisions that finish afterwards have no socket to answer on. */
  private closed = false;
  readonly counters = { received: 0, dropped: 0, duplicates: 0, resent: 0, answered: 0, errors: 0 };
  /** Dropped datagrams by reason (a fixed set of names), for metrics. */
  readonly drops = new Map<string, number>();

  constructor(private readonly options: RadiusServerOptions) {
    this.dedupe = new DedupeCache({ ...options.dedupe, inFlightMs: Math.max(IN_FLIGHT_LIMIT_MS, options.dedupe.windowMs), now: options.now });
    this.dropped = rateLimitedWarn(options.logger, 10_000, options.now);
  }

  /** Binds every listener; resolves with the bound addresses (port 0 picks a free port). */
  async start(): Promise<{ role: Role; address: string; port: number }[]> {
    const bound: { role: Role; address: string; port: number }[] = [];
    const listen = async (addr: ListenAddress, role: Role) => {
      // A Monday-morning burst must queue in the kernel, not be dropped: ask for a large receive buffer
      // (Linux caps it at net.core.rmem_max; raise that sysctl for more than its default 208 KiB).
      const index = this.sockets.length;
      const socket: UdpSocket = await UdpSocket.bind({
        host: addr.host,
        port: addr.port,
        receiveBufferBytes: RECEIVE_BUFFER_BYTES,
        onMessage: (msg, peer) => this.receive(msg, peer, socket, role, index),
        onSendRefused: (count) => {
          this.countDrops('reply_refused', count);
          this.dropped('reply_refused', { count }, 'the kernel refused to send replies (socket buffer full?): the NAS will retransmit');
        },
      });
      this.sockets.push(socket);
      bound.push({ role, address: socket.host, port: socket.port });
    };
    for (const a of this.options.auth) await listen(a, 'auth');
    for (const a of this.options.acct ?? []) await listen(a, 'acct');
    const tls = this.options.radsec;
    for (const a of tls?.listen ?? []) {
      const listener = RADSEC_LISTENER_BASE + this.radsec.length;
      const l = new RadsecListener({
        host: a.host,
        port: a.port,
        tls: tls!.tls,
        clients: tls!.clients,
        handshakeTimeoutMs: tls!.handshakeTimeoutMs,
        idleTimeoutMs: tls!.idleTimeoutMs,
        // A packet begun gets as long as a handshake does: both are one small exchange (slowloris bound).
        frameTimeoutMs: tls!.handshakeTimeoutMs,
        maxConnections: RADSEC_MAX_CONNECTIONS,
        onFrame: (frame, client, peer, connection) => this.frame(frame, client, peer, connection, listener),
        onRefused: (reason, from, message) => {
          this.countDrops(reason, 1);
          this.dropped(reason, { from }, message);
        },
      });
      this.radsec.push(l);
      const at = await l.listen();
      bound.push({ role: 'radsec', address: at.address, port: at.port });
    }
    return bound;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const socket of this.sockets) socket.close();
    this.sockets.length = 0;
    await Promise.all(this.radsec.map((l) => l.close()));
    this.radsec.length = 0;
  }

  /** Open RADIUS/TLS connections. */
  get radsecConnections(): number {
    return this.radsec.reduce((n, l) => n + l.connections, 0);
  }

  get pendingDuplicates(): number {
    return this.dedupe.size;
  }

  private drop(reason: string, rinfo: Peer, msg: string): void {
    this.counters.dropped++;
    this.countDrops(reason, 1);
    this.dropped(reason, { from: `${rinfo.address}:${rinfo.port}` }, msg);
  }

  /** Datagrams (received, or replies the kernel refused) lost for `reason`, for metrics. */
  private countDrops(reason: string, n: number): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + n);
  }

  private receive(msg: Buffer, rinfo: Peer, socket: UdpSocket, role: Role, listener: number): void {
    this.counters.received++;
    // Nothing in a datagram may crash the process: every failure below is a typed drop.
    try {
      const client = this.options.clients().lookup(rinfo.address);
      if (!client) return this.drop('unknown_client', rinfo, 'datagram from an address that is not a configured client: dropped');
      this.handle(msg, client, rinfo, socket, role, listener);
    } catch (err) {
      this.counters.errors++;
      this.options.logger.error({ err, from: `${rinfo.address}:${rinfo.port}` }, 'bug: datagram handling failed; dropped');
    }
  }

  /** A packet read from a RADIUS/TLS connection, whose client its certificate named. */
  private frame(msg: Buffer, client: RadiusClient, peer: Peer, connection: ReplySink, listener: number): void {
    this.counters.received++;
    try {
      this.handle(msg, client, peer, connection, 'radsec', listener);
    } catch (err) {
      this.counters.errors++;
      this.options.logger.error({ err, from: `${peer.address}:${peer.port}` }, 'bug: RADIUS/TLS packet handling failed; dropped');
    }
  }

  private handle(msg: Buffer, client: RadiusClient, rinfo: Peer, socket: ReplySink, role: Role, listener: number): void {
    const decoded = decodePacket(msg);
    if (!decoded.ok) return this.drop(decoded.reason, rinfo, `malformed packet (${decoded.reason}) from client ${client.name}: dropped`);
    const packet = decoded.packet;
    switch (packet.code) {
      case Code.AccessRequest:
        // RFC 6614 §2.5: one TLS connection carries authentication and accounting alike.
        if (role === 'acct') return this.drop('wrong_port', rinfo, 'Access-Request on the accounting port: dropped');
        return this.access(packet, client, rinfo, socket, listener);
      case Code.AccountingRequest:
        if (role === 'auth') return this.drop('wrong_port', rinfo, 'Accounting-Request on the authentication port: dropped');
        return this.accounting(packet, client, rinfo, socket, listener);
      case Code.StatusServer:
        return this.statusServer(packet, client, rinfo, socket, role);
      default:
        return this.drop('unexpected_code', rinfo, `packet code ${packet.code} is not a request: dropped`);
    }
  }

  private access(packet: RadiusPacket, client: RadiusClient, rinfo: Peer, socket: ReplySink, listener: number): void {
    if (packet.messageAuthenticatorOffset >= 0) {
      // RFC 3579 §3.2: a Message-Authenticator that is present is always checked.
      if (!verifyRequestMessageAuthenticator(packet, client.secret)) {
        return this.drop('bad_message_authenticator', rinfo, `Message-Authenticator does not verify (wrong shared secret?) for client ${client.name}: dropped`);
      }
    } else if (client.requireMessageAuthenticator) {
      // BlastRADIUS (CVE-2024-3596): without it an on-path attacker can forge an Accept.
      return this.drop('missing_message_authenticator', rinfo, `Access-Request without Message-Authenticator from client ${client.name}: dropped (set require_message_authenticator: false only for legacy NAS)`);
    } else if (findAttribute(packet, Attr.EapMessage)) {
      return this.drop('eap_without_message_authenticator', rinfo, 'EAP-Message without Message-Authenticator: dropped (RFC 3579)');
    } else if (!client.tls && findAttribute(packet, Attr.ProxyState)) {
      // BlastRADIUS: Proxy-State is where a forged prefix goes; a legacy NAS is no proxy and never sends it
      // (FreeRADIUS limit_proxy_state).
      return this.drop('proxy_state_without_message_authenticator', rinfo, `Proxy-State without Message-Authenticator from client ${client.name}: dropped (BlastRADIUS)`);
    }

    const seen = this.dedupe.begin(listener, rinfo, packet.identifier, packet.authenticator);
    if (seen.kind === 'in_flight') {
      this.counters.duplicates++;
      return;
    }
    if (seen.kind === 'answered') {
      this.counters.resent++;
      socket.send(seen.reply, rinfo);
      return;
    }
    if (seen.kind === 'overloaded') return this.drop('overloaded', rinfo, 'too many requests being decided at once: dropped (the NAS will retry)');

    const hidden = findAttribute(packet, Attr.UserPassword);
    const state = findAttribute(packet, Attr.State);
    const target = new ReplyTarget(this.answers, this.nextQ++, client, rinfo, socket, seen.ticket, packet.identifier, proxyStatesOf(packet));
    const request: AccessRequest = {
      q: target.q,
      client,
      packet,
      source: rinfo,
      receivedAt: this.options.now(),
      arrival: performance.now(),
      userName: findText(packet, Attr.UserName),
      password: hidden ? revealPassword(hidden, client.secret, packet.authenticator) : undefined,
      state,
    };
    try {
      this.options.onAccess(request, target);
    } catch (err) {
      this.failed(target, err);
    }
  }

  private failed(target: ReplyTarget, err: unknown): void {
    this.counters.errors++;
    this.dedupe.abandon(target.ticket);
    this.options.logger.error({ err, q: target.q }, 'bug: access handler failed; no reply sent');
  }

  private finish(target: ReplyTarget, reply: AccessReply | AccessDrop | null): void {
    try {
      this.reply(target, reply);
    } catch (err) {
      this.failed(target, err);
    }
  }

  private reply(target: ReplyTarget, reply: AccessReply | AccessDrop | null): void {
    if (this.closed) return;
    const { ticket, proxyStates } = target;
    if (!reply || 'drop' in reply) {
      this.dedupe.abandon(ticket);
      if (reply) {
        this.counters.dropped++;
        this.countDrops(reply.drop, 1);
      }
      return;
    }
    if (!fitsInReply(reply.attributes, proxyStates)) {
      this.dedupe.abandon(ticket);
      return this.drop('reply_too_large', target.source, `the reply with the Proxy-State attributes of q=${target.q} from client ${target.client.name} would exceed 4096 octets: not sent`);
    }
    // Undecided past IN_FLIGHT_LIMIT_MS, its entry was forgotten and may name another request now: no
    // answer (the NAS gave up long ago; a retransmission is decided afresh).
    if (!this.dedupe.requestAuthenticator(ticket, REQUEST_AUTHENTICATOR)) {
      this.counters.dropped++;
      return this.countDrops('decided_too_late', 1);
    }
    const bytes = encodeResponse({
      code: reply.code,
      identifier: target.identifier,
      requestAuthenticator: REQUEST_AUTHENTICATOR,
      attributes: reply.attributes,
      proxyStates,
      secret: target.client.secret,
      withMessageAuthenticator: true,
    });
    const send = () => {
      this.dedupe.answered(ticket, bytes);
      this.counters.answered++;
      target.socket.send(bytes, target.source);
    };
    if (!reply.delayMs) return send();
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      send();
    }, reply.delayMs);
    this.timers.add(timer);
  }

  private accounting(packet: RadiusPacket, client: RadiusClient, rinfo: Peer, socket: ReplySink, listener: number): void {
    if (!verifyAccountingRequestAuthenticator(packet, client.secret)) {
      return this.drop('bad_accounting_authenticator', rinfo, `Accounting-Request authenticator does not verify (wrong shared secret?) for client ${client.name}: dropped`);
    }
    if (packet.messageAuthenticatorOffset >= 0 && !verifyRequestMessageAuthenticator(packet, client.secret)) {
      return this.drop('bad_message_authenticator', rinfo, `Message-Authenticator does not verify for client ${client.name}: dropped`);
    }
    const seen = this.dedupe.begin(listener, rinfo, packet.identifier, packet.authenticator);
    if (seen.kind !== 'new') {
      if (seen.kind === 'answered') socket.send(seen.reply, rinfo);
      if (seen.kind === 'overloaded') this.drop('overloaded', rinfo, 'too many requests being decided at once: dropped (the NAS will retry)');
      return;
    }
    try {
      this.options.onAccounting({ q: this.nextQ++, client, packet, source: rinfo });
    } catch (err) {
      // RFC 2866 §2: no Accounting-Response unless the request was recorded; the NAS will retry.
      this.dedupe.abandon(seen.ticket);
      this.counters.errors++;
      this.options.logger.error({ err, from: `${rinfo.address}:${rinfo.port}` }, 'bug: accounting handler failed; no reply sent');
      return;
    }
    const bytes = encodeResponse({
      code: Code.AccountingResponse,
      identifier: packet.identifier,
      requestAuthenticator: packet.authenticator,
      attributes: Buffer.alloc(0),
      proxyStates: proxyStatesOf(packet),
      secret: client.secret,
      withMessageAuthenticator: false,
    });
    this.dedupe.answered(seen.ticket, bytes);
    socket.send(bytes, rinfo);
  }

  private statusServer(packet: RadiusPacket, client: RadiusClient, rinfo: Peer, socket: ReplySink, role: Role): void {
    // RFC 5997 §3: Status-Server MUST carry a valid Message-Authenticator.
    if (!verifyRequestMessageAuthenticator(packet, client.secret)) {
      return this.drop('status_server_unsigned', rinfo, `Status-Server without a valid Message-Authenticator from client ${client.name}: dropped`);
    }
    const answer = (attributes: Buffer) => {
      if (this.closed) return;
      const bytes = encodeResponse({
        // RFC 6614 §2.6 / RFC 5997 §3: over TLS (and on the auth port) the answer is Access-Accept.
        code: role === 'acct' ? Code.AccountingResponse : Code.AccessAccept,
        identifier: packet.identifier,
        requestAuthenticator: packet.authenticator,
        attributes,
        proxyStates: proxyStatesOf(packet),
        secret: client.secret,
        withMessageAuthenticator: true,
      });
      socket.send(bytes, rinfo);
    };
    if (!this.options.statusAttributes) return answer(NO_ATTRIBUTES);
    this.options.statusAttributes().then(answer, (err: unknown) => {
      this.counters.errors++;
      this.options.logger.error({ err, from: `${rinfo.address}:${rinfo.port}` }, 'bug: Status-Server attributes failed; no reply sent');
    });
  }
}

const NO_ATTRIBUTES = Buffer.alloc(0);
const NO_PROXY_STATE: readonly Buffer[] = [];

/** RFC 2865 §3: a reply is at most 4096 octets, Message-Authenticator and the copied Proxy-State included. */
function fitsInReply(attributes: Buffer, proxyStates: readonly Buffer[]): boolean {
  let length = HEADER_LENGTH + 18 + attributes.length;
  for (const ps of proxyStates) length += ps.length;
  return length <= MAX_PACKET_LENGTH;
}

/** The request's Proxy-State attributes, whole and in order (RFC 2865 §5.33). */
function proxyStatesOf(packet: RadiusPacket): readonly Buffer[] {
  let out: Buffer[] | undefined;
  for (const a of packet.attributes) {
    if (a.type === Attr.ProxyState) (out ??= []).push(packet.raw.subarray(a.offset, a.offset + a.value.length + 2));
  }
  return out ?? NO_PROXY_STATE;
}
