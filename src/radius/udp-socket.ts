// The server's UDP sockets: native/udp_batch.c moves up to BATCH datagrams per crossing between C
// and JS (recvmmsg / sendmmsg). Replies queued while handling a batch, or in the promise jobs and
// ticks after it, leave together in one sendmmsg on the next process.nextTick.
import { lookup } from 'node:dns/promises';
import { createRequire } from 'node:module';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';

interface NativeUdp {
  BATCH: number;
  SLOT: number;
  META: number;
  open(ipv6: boolean, v6only: boolean, host: string, port: number, receiveBufferBytes: number, rx: Buffer, rxMeta: Buffer, tx: Buffer, txMeta: Buffer, onBatch: (count: number) => void): { handle: object; port: number };
  flush(handle: object, count: number): number;
  close(handle: object): void;
}

const native = loadNative();
const { BATCH, SLOT, META } = native;
const ADDRESS_TEXT = 28;
const IPV4_NAMES_LIMIT = 65_536;

/** Built by node-gyp on `npm ci` (binding.gyp); the same path from src/radius and dist/radius. */
function loadNative(): NativeUdp {
  try {
    return createRequire(import.meta.url)('../../build/Release/udp_batch.node') as NativeUdp;
  } catch (err) {
    throw new Error(`the UDP addon build/Release/udp_batch.node could not be loaded (${(err as Error).message}): run \`npm run install\` in the project (needs python3, make and g++, as better-sqlite3 does)`, { cause: err });
  }
}

/** Where a datagram came from, and where its reply goes. */
export class Peer {
  constructor(
    readonly address: string,
    readonly port: number,
    readonly family: 4 | 6,
    /** IPv4: the 4 address octets as the kernel wrote them, read as one little-endian number. */
    readonly ipv4: number,
    /** IPv6: the 16 address octets and the scope id. */
    readonly ipv6: Buffer | undefined,
    readonly scopeId: number,
  ) {}

  /** A destination given as a dotted IPv4 address (the bench's load generator sends to the server this way). */
  static ipv4(address: string, port: number): Peer {
    const octets = address.split('.').map(Number);
    if (octets.length !== 4 || octets.some((o) => !(o >= 0 && o <= 255))) throw new Error(`not an IPv4 address: ${address}`);
    return new Peer(address, port, 4, Buffer.from(octets).readUInt32LE(0), undefined, 0);
  }

  /** A peer known by its address as text (a TLS connection's remoteAddress), with the octets a datagram's source has. */
  static fromText(address: string, port: number): Peer {
    return isIPv4(address) ? Peer.ipv4(address, port) : new Peer(address, port, 6, 0, ipv6Octets(address), 0);
  }
}

/** The 16 octets of an IPv6 address in RFC 4291 §2.2 text ("::" for zeros, a dotted IPv4 tail); a %zone is left out. */
export function ipv6Octets(text: string): Buffer {
  if (!isIPv6(text)) throw new Error(`not an IPv6 address: ${text}`);
  return Buffer.from(ipaddr.IPv6.parse(text).toByteArray());
}

export interface UdpSocketOptions {
  host: string;
  port: number;
  receiveBufferBytes: number;
  /** Must not throw: an exception here is an uncaught exception, as in a node:dgram 'message' listener. */
  onMessage: (msg: Buffer, peer: Peer) => void;
  /** Replies the kernel refused (send buffer full, unreachable address); the NAS will retransmit. */
  onSendRefused: (count: number) => void;
}

export class UdpSocket {
  private readonly rx = Buffer.alloc(BATCH * SLOT);
  private readonly rxMeta = Buffer.alloc(BATCH * META);
  private readonly tx = Buffer.alloc(BATCH * SLOT);
  private readonly txMeta = Buffer.alloc(BATCH * META);
  /** IPv4 sources seen, by address as a number: a datagram's source string is made once per host. */
  private readonly ipv4Names = new Map<number, string>();
  private handle: object | undefined;
  private queued = 0;
  private readonly flushQueued = () => this.flush();
  readonly family: 4 | 6;
  port = 0;

  private constructor(
    private readonly options: UdpSocketOptions,
    readonly host: string,
  ) {
    this.family = isIP(host) === 6 ? 6 : 4;
  }

  static async bind(options: UdpSocketOptions): Promise<UdpSocket> {
    const host = isIP(options.host) ? options.host : (await lookup(options.host)).address;
    const socket = new UdpSocket(options, host);
    const ipv6 = socket.family === 6;
    let opened: { handle: object; port: number };
    try {
      opened = native.open(ipv6, ipv6, host, options.port, options.receiveBufferBytes, socket.rx, socket.rxMeta, socket.tx, socket.txMeta, (count) => socket.receive(count));
    } catch (err) {
      // Shaped as node:dgram's errors (code, syscall, address, port), so callers can name the address that failed.
      const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
      e.code ??= /\b(E[A-Z]+)\b/.exec(e.message)?.[1];
      e.syscall ??= 'bind';
      e.address = host;
      e.port = options.port;
      throw e;
    }
    socket.handle = opened.handle;
    socket.port = opened.port;
    return socket;
  }

  /** Queues a datagram; it leaves on the next tick with the others queued by then. */
  send(bytes: Buffer, peer: Peer): void {
    if (!this.handle) return;
    // RFC 2865 §3: no RADIUS packet is longer; a longer one would spill into the next slot.
    if (bytes.length > SLOT) throw new RangeError(`datagram of ${bytes.length} octets: at most ${SLOT}`);
    if (this.queued === BATCH) this.flush();
    const slot = this.queued++;
    if (slot === 0) process.nextTick(this.flushQueued);
    bytes.copy(this.tx, slot * SLOT);
    const m = slot * META;
    const meta = this.txMeta;
    meta[m] = bytes.length & 0xff;
    meta[m + 1] = bytes.length >>> 8;
    meta[m + 2] = peer.port & 0xff;
    meta[m + 3] = peer.port >>> 8;
    meta[m + 4] = peer.family;
    if (peer.ipv6) {
      meta.writeUInt32LE(peer.scopeId, m + 8);
      peer.ipv6.copy(meta, m + 12);
    } else {
      meta.writeUInt32LE(peer.ipv4, m + 12);
    }
  }

  close(): void {
    if (!this.handle) return;
    this.flush();
    native.close(this.handle);
    this.handle = undefined;
  }

  private flush(): void {
    const count = this.queued;
    if (count === 0 || !this.handle) return;
    this.queued = 0;
    const refused = native.flush(this.handle, count);
    if (refused > 0) this.options.onSendRefused(refused);
  }

  private receive(count: number): void {
    const { rx, rxMeta, options } = this;
    for (let i = 0; i < count; i++) {
      const m = i * META;
      const length = rxMeta[m]! | (rxMeta[m + 1]! << 8);
      const peer = this.peerAt(m);
      // A copy: the handler may keep the datagram past this batch (held pushes, async decisions).
      const msg = Buffer.allocUnsafe(length);
      rx.copy(msg, 0, i * SLOT, i * SLOT + length);
      options.onMessage(msg, peer);
    }
  }

  private peerAt(m: number): Peer {
    const meta = this.rxMeta;
    const port = meta[m + 2]! | (meta[m + 3]! << 8);
    if (meta[m + 4] === 4) {
      const ipv4 = meta.readUInt32LE(m + 12);
      let address = this.ipv4Names.get(ipv4);
      if (address === undefined) {
        address = meta.toString('latin1', m + ADDRESS_TEXT, m + ADDRESS_TEXT + meta[m + 5]!);
        if (this.ipv4Names.size === IPV4_NAMES_LIMIT) this.ipv4Names.clear();
        this.ipv4Names.set(ipv4, address);
      }
      return new Peer(address, port, 4, ipv4, undefined, 0);
    }
    const ipv6 = Buffer.allocUnsafe(16);
    meta.copy(ipv6, 0, m + 12, m + 28);
    return new Peer(meta.toString('latin1', m + ADDRESS_TEXT, m + ADDRESS_TEXT + meta[m + 5]!), port, 6, 0, ipv6, meta.readUInt32LE(m + 8));
  }
}
