/**
 * A minimal Chrome DevTools Protocol client over the inspector's WebSocket, enough for the bench to
 * force a full GC in a server started with `--inspect=127.0.0.1:0` and read its memory use: so a
 * memory figure is what the server retains, not garbage that happens to be uncollected.
 * (Node 20 has no WebSocket client without a flag; this speaks RFC 6455 text frames, client-masked.)
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export type MemoryUsage = { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number };

/** "Debugger listening on ws://127.0.0.1:PORT/UUID" from the server's stderr. */
export function inspectorUrlIn(log: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(log)?.[1];
}

export class InspectorSession {
  private buffer: Buffer = Buffer.alloc(0);
  private nextId = 1;
  private readonly calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => this.onData(d));
  }

  static connect(wsUrl: string): Promise<InspectorSession> {
    const url = new URL(wsUrl);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname);
      socket.once('error', reject);
      socket.once('connect', () => {
        const key = randomBytes(16).toString('base64');
        socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
        let head = Buffer.alloc(0);
        const onHead = (d: Buffer) => {
          head = Buffer.concat([head, d]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          socket.off('data', onHead);
          if (!/^HTTP\/1\.1 101/.test(head.toString('latin1'))) return reject(new Error(`inspector refused the WebSocket: ${head.toString('latin1').split('\r\n')[0]}`));
          socket.off('error', reject);
          const session = new InspectorSession(socket);
          const rest = head.subarray(end + 4);
          if (rest.length) session.onData(rest);
          resolve(session);
        };
        socket.on('data', onHead);
      });
    });
  }

  /** One CDP method call; resolves with its result. */
  call<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    const payload = Buffer.from(JSON.stringify({ id, method, params }), 'utf8');
    const mask = randomBytes(4);
    const len = payload.length;
    const header = len < 126 ? Buffer.from([0x81, 0x80 | len]) : len < 65536 ? Buffer.from([0x81, 0x80 | 126, len >> 8, len & 255]) : undefined;
    if (!header) throw new Error('CDP message too large for this client');
    for (let i = 0; i < len; i++) payload[i]! ^= mask[i & 3]!;
    this.socket.write(Buffer.concat([header, mask, payload]));
    return new Promise<T>((resolve, reject) => this.calls.set(id, { resolve: resolve as (v: unknown) => void, reject }));
  }

  /** Full GC (twice: weak callbacks of the first free more), then process.memoryUsage(). */
  async collectGarbageAndMeasure(): Promise<MemoryUsage> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    const r = await this.call<{ result: { value: string } }>('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
    return JSON.parse(r.result.value) as MemoryUsage;
  }

  close(): void {
    this.socket.end(Buffer.from([0x88, 0x80, 0, 0, 0, 0]));
    this.socket.destroy();
  }

  private onData(d: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, d]) : d;
    for (;;) {
      if (this.buffer.length < 2) return;
      const opcode = this.buffer[0]! & 0x0f;
      let len = this.buffer[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buffer.length < 4) return;
        len = this.buffer.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buffer.length < 10) return;
        len = Number(this.buffer.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buffer.length < off + len) return;
      const payload = this.buffer.subarray(off, off + len);
      this.buffer = this.buffer.subarray(off + len);
      if (opcode !== 1) continue; // the inspector sends whole text frames; events and pings are not needed here
      const msg = JSON.parse(payload.toString('utf8')) as { id?: number; result?: unknown; error?: { message: string } };
      const call = msg.id === undefined ? undefined : this.calls.get(msg.id);
      if (!call) continue;
      this.calls.delete(msg.id!);
      if (msg.error) call.reject(new Error(`CDP: ${msg.error.message}`));
      else call.resolve(msg.result);
    }
  }
}
