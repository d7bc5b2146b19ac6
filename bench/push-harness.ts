// The harness of the push stages (bench/push.ts: one node; bench/ha-push.ts: two). Each node is
// bench/push-server.mjs on bench/config.ts's push config (first_factor none: no password hashing
// measured). Every user has one device; one ECDSA P-256 key pair serves all devices (cheap to set up
// and sign with; the server still verifies each answer against the device's stored key).
// A node runs with the flags of its kind (servers.ts SINGLE_NODE_FLAGS, unless on PostgreSQL + Redis);
// BENCH_PUSH_NODE_ARGS adds more after them (they win), e.g. --trace-gc, --cpu-prof or another --max-semi-space-size.
import { createHash, generateKeyPairSync, randomFillSync, sign, type KeyObject } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../src/config/schema.js';
import { hmacMd5Key } from '../src/radius/md5.js';
import { openStore } from '../src/store/open-store.js';
import { resolveEncryptionKey } from '../src/store/secret-box.js';
import { writeBenchConfig, type BenchConfig } from './config.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { CODE, checkReplyMessageAuthenticator, packetLength, verifyResponseAuthenticator, writeAccessRequest } from './packet.js';
import { freeTcpPort, freeUdpPort } from '../scripts/engines/ports.js';
import { procCpuSeconds, procStatus } from './proc.js';
import { FROM_SRC, REPO, SINGLE_NODE_FLAGS, launch, type RunningServer } from './servers.js';
import { SECRET, type Ctx } from './stage.js';

const PER_SOCKET = 250;
const SECRET_BYTES = Buffer.from(SECRET);
const MA_KEY = hmacMd5Key(SECRET_BYTES);
export const mib = (kib: number) => Math.round((kib / 1024) * 10) / 10;
export const each = (total: number, n: number) => (n ? Math.round((total / n) * 1000) / 1000 : 0);
export const usersNamed = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(5, '0')}`);
/** A device's bearer token (the store keeps only its SHA-256, as activation does) and its FCM token. */
export const tokenOf = (name: string) => createHash('sha256').update(`bench-push-token:${name}`).digest('base64url');
const pushTokenOf = (name: string) => `bench-fcm-${name}`;
export const formatLatency = (s: LatencySummary) => `p50 ${s.p50Ms} ms, p90 ${s.p90Ms} ms, p99 ${s.p99Ms} ms, max ${s.maxMs} ms`;

export type Node = RunningServer & { httpPort: number; memory: () => Promise<{ rssKiB: number; heapKiB: number; youngKiB: number }> };

/** The held request each push token's push belongs to (the last Requests.open of that user). */
const routes = new Map<string, { set: Requests; k: number }>();

/** A node, ready once it says 'up' (RADIUS and HTTP listen); `memory` is VmRSS and V8 heap + external after a full GC. */
export async function startNode(dir: string, name: string, cpu: number | undefined, shared?: BenchConfig['shared']): Promise<Node> {
  const [authPort, httpPort] = [await freeUdpPort(), await freeTcpPort()];
  const cfg = writeBenchConfig(dir, { authPort, secret: SECRET, firstFactor: 'none', logLevel: 'warn', throughput: true, push: { httpPort }, shared }, `${name}.yaml`);
  const nodeArgs = (process.env.BENCH_PUSH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const args = ['--expose-gc', ...(shared ? [] : SINGLE_NODE_FLAGS), ...nodeArgs, ...(FROM_SRC ? ['--import', 'tsx'] : []), join(REPO, 'bench', 'push-server.mjs'), cfg];
  const srv = await launch(`node ${name}`, cpu, process.execPath, args, authPort, SECRET, dir, join(dir, `${name}.log`), {
    ipc: true, env: { ...process.env, BENCH_PUSH_FROM_SRC: FROM_SRC ? '1' : '0' }, ready: (c) => new Promise((r) => c.once('message', ([m]: string[]) => r(m === 'up'))),
  });
  type Usage = NodeJS.MemoryUsage & { youngCommitted: number };
  let gotMemory = (_: Usage) => {};
  srv.child.on('message', ([kind, a, b]: [string, unknown, string]) => {
    if (kind === 'memory') gotMemory(a as Usage);
    const to = kind === 'push' ? routes.get(a as string) : undefined;
    to?.set.onPush(to.k, b);
  });
  const memory = async () => {
    const u = await new Promise<Usage>((resolve) => ((gotMemory = resolve), srv.child.send(['memory'])));
    return { rssKiB: procStatus(srv.pid).rssKiB, heapKiB: (u.heapUsed + u.external) / 1024, youngKiB: u.youngCommitted / 1024 };
  };
  return { ...srv, httpPort, memory };
}

/** Waits until the nodes have used no CPU for `quietMs` (at most 10 s): they have worked through what they were sent. */
export async function settle(nodes: Node[], quietMs = 300): Promise<void> {
  const cpu = () => nodes.reduce((sum, n) => sum + (procCpuSeconds(n.pid) ?? 0), 0);
  const deadline = Date.now() + 10_000;
  for (let last = cpu(), since = Date.now(); Date.now() < deadline && Date.now() - since < quietMs; ) {
    await sleep(50);
    if (cpu() !== last) [last, since] = [cpu(), Date.now()];
  }
}

export const cpuMs = (node: Node) => (procCpuSeconds(node.pid) ?? NaN) * 1000;

/** One HTTP request as a phone makes it: the status and body once the answer is in; `onWritten` just before the request leaves. */
export function call(agent: Agent, port: number, path: string, token: string, body?: string, onWritten?: () => void): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers = { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}) };
    const req = request({ agent, host: '127.0.0.1', port, method: body ? 'POST' : 'GET', path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    onWritten?.();
    req.end(body);
  });
}

/**
 * The Access-Requests of a set of users held at one node: user k sends from socket k/250 with identifier
 * k%250, learns its request id from the node's push, and its reply is verified (Response Authenticator,
 * Message-Authenticator) and timed. All times are performance.now() of this process.
 */
export class Requests {
  readonly packets: Buffer[];
  readonly ids: string[];
  readonly sentAt: Float64Array;
  readonly pushedAt: Float64Array;
  readonly postedAt: Float64Array;
  readonly acceptedAt: Float64Array;
  readonly code: Uint8Array;
  readonly failures: string[] = [];
  pushes = 0;
  duplicates = 0;
  unverified = 0;
  private sockets: Socket[] = [];
  private wake = () => {};

  private constructor(readonly names: string[], readonly node?: Node) {
    const n = names.length;
    [this.sentAt, this.pushedAt, this.postedAt, this.acceptedAt] = [new Float64Array(n), new Float64Array(n), new Float64Array(n), new Float64Array(n)];
    this.code = new Uint8Array(n);
    this.ids = new Array<string>(n).fill('');
    this.packets = names.map((name, k) => {
      const buf = Buffer.alloc(4096);
      randomFillSync(buf, 4, 16);
      const len = writeAccessRequest(buf, k % PER_SOCKET, Buffer.from(name), Buffer.from('not-checked'), Buffer.alloc(0), Buffer.from('bench-vpn'), SECRET_BYTES, MA_KEY, Buffer.from(`198.51.100.${k % 250}`));
      return buf.subarray(0, len);
    });
  }

  /** The set's sockets (none without a node: the floor's answers get no RADIUS reply); its users' pushes come here from now on. */
  static async open(names: string[], node?: Node): Promise<Requests> {
    const set = new Requests(names, node);
    for (let s = 0; node && s * PER_SOCKET < names.length; s++) {
      const socket = createSocket('udp4');
      await new Promise<void>((ok) => socket.bind(0, '127.0.0.1', ok));
      socket.setRecvBufferSize(4 * 1024 * 1024);
      socket.on('message', (msg) => set.onReply(s * PER_SOCKET + msg[1]!, msg, performance.now()));
      set.sockets.push(socket);
    }
    names.forEach((name, k) => routes.set(pushTokenOf(name), { set, k }));
    return set;
  }

  onPush(k: number, id: string): void {
    if (!this.ids[k]) this.pushes++;
    this.ids[k] = id;
    this.pushedAt[k] = performance.now();
    this.wake();
  }

  private onReply(k: number, msg: Buffer, at: number): void {
    const request = this.packets[k];
    const len = packetLength(msg);
    if (!request) return;
    if (this.code[k]) return void this.duplicates++;
    if (len < 0 || !verifyResponseAuthenticator(msg, len, request, 4, SECRET_BYTES) || checkReplyMessageAuthenticator(msg, len, request, 4, MA_KEY) > 1) return void this.unverified++;
    if (!(this.postedAt[k]! > 0 && at > this.postedAt[k]!)) this.failures.push(`${this.names[k]}: answered before its approval was posted`);
    this.code[k] = msg[0]!;
    this.acceptedAt[k] = at;
  }

  private send(k: number): void {
    this.sentAt[k] = performance.now();
    this.sockets[Math.floor(k / PER_SOCKET)]!.send(this.packets[k]!, this.node!.port, '127.0.0.1');
  }

  /**
   * Sends every request, at most `window` sent and not yet pushed: the server's socket buffer
   * (net.core.rmem_default, 208 KiB) holds only a few hundred datagrams, and a PostgreSQL store's pool
   * 10 connections. A request whose push has not come 200 ms after the window filled counts as lost
   * and frees its place; once the node is idle the lost ones are sent again, byte for byte (the node's
   * duplicate cache would join a retransmission to its held request), at most 5 times.
   */
  async hold(window: number): Promise<{ ms: number; missingAtFirst: number; retransmitted: number }> {
    const t0 = performance.now();
    let todo = this.names.map((_, k) => k);
    let [missingAtFirst, retransmitted] = [-1, 0];
    for (let round = 0; round < 6 && todo.length; round++) {
      if (round) retransmitted += todo.length;
      const pushedBefore = this.pushes;
      let lost = 0;
      for (const [sent, k] of todo.entries()) {
        const deadline = performance.now() + 200;
        while (sent - (this.pushes - pushedBefore) - lost >= window) {
          const left = deadline - performance.now();
          if (left <= 0) {
            lost = sent - (this.pushes - pushedBefore) - window + 1;
            break;
          }
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, left);
            this.wake = () => (clearTimeout(timer), resolve());
          });
        }
        this.send(k);
      }
      await settle([this.node!]);
      todo = todo.filter((k) => !this.ids[k]);
      if (missingAtFirst < 0) missingAtFirst = todo.length;
    }
    if (todo.length) throw new Error(`${todo.length} requests got no push from ${this.node!.name} after 5 re-sends`);
    return { ms: Math.round(performance.now() - t0), missingAtFirst, retransmitted };
  }

  /**
   * Approves users [from, to) through the Mobile App API at `port`: paced at `rate` a second on a timer
   * (a busy wait would delay the replies it times), or with rate 0 all at once, `connections` in
   * flight. Resolves once every answer and (with a node) every Access-Accept is in, or 10 s after the
   * last answer; returns the HTTP latencies.
   */
  async approve(port: number, from: number, to: number, rate: number, connections: number, key: KeyObject): Promise<LatencyHistogram> {
    const agent = new Agent({ keepAlive: true, maxSockets: connections });
    const http = new LatencyHistogram();
    const bodies = this.ids.slice(from, to).map((id) => JSON.stringify({ decision: 'approve', signature: sign('sha256', Buffer.from(`${id}.approve`), { key, dsaEncoding: 'ieee-p1363' }).toString('base64') }));
    const post = async (k: number) => {
      const r = await call(agent, port, `/api/v1/requests/${this.ids[k]}/answer`, tokenOf(this.names[k]!), bodies[k - from], () => (this.postedAt[k] = performance.now()));
      http.record(performance.now() - this.postedAt[k]!);
      if (r.status !== 200 || !r.text.includes('"approved"')) this.failures.push(`${this.names[k]}: answer ${r.status} ${r.text}`);
    };
    const answers: Promise<void>[] = [];
    let next = from;
    if (rate === 0) {
      const lane = async () => {
        while (next < to) await post(next++);
      };
      answers.push(...Array.from({ length: connections }, lane));
    } else {
      const start = performance.now() + 5;
      while (next < to) {
        await sleep(Math.max(0, start + ((next - from) * 1000) / rate - performance.now()));
        while (next < to && start + ((next - from) * 1000) / rate <= performance.now()) answers.push(post(next++));
      }
    }
    await Promise.all(answers).catch((err: Error) => this.failures.push(err.message));
    agent.destroy();
    for (const deadline = Date.now() + 10_000; this.node && Date.now() < deadline && this.code.subarray(from, to).includes(0); ) await sleep(10);
    return http;
  }

  /** Approve-to-Accept of users [from, to). */
  latency(from: number, to: number): LatencySummary {
    const h = new LatencyHistogram();
    for (let k = from; k < to; k++) if (this.acceptedAt[k]) h.record(this.acceptedAt[k]! - this.postedAt[k]!);
    return h.summary();
  }

  /** Every request answered exactly once, with an Access-Accept that verified, and every answer 200 approved. */
  check(): string[] {
    const accepts = this.code.filter((c) => c === CODE.AccessAccept).length;
    return [
      ...(accepts === this.names.length ? [] : [`${accepts}/${this.names.length} Access-Accept at ${this.node?.name}`]),
      ...(this.unverified ? [`${this.unverified} replies did not verify`] : []),
      ...(this.duplicates ? [`${this.duplicates} duplicate replies`] : []),
      ...this.failures,
    ];
  }

  close(): void {
    for (const s of this.sockets) s.close();
  }
}

/**
 * A temp dir (removed when the bench ends, unless --keep-dirs), the key pair, and the users with one device
 * each through the store API; the store's key file is what the nodes' configs name.
 */
export async function setUp(ctx: Ctx, label: string, names: string[], postgresUrl?: string) {
  const { dir } = ctx.track({ stop: async () => undefined, dir: mkdtempSync(join(tmpdir(), `bench-${label}-`)) });
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const t0 = performance.now();
  const local = configSchema.shape.store.parse({ path: join(dir, 'bench.db') });
  const key = resolveEncryptionKey(local).key; // creates bench.db.key
  const store = await openStore(postgresUrl ? configSchema.shape.store.parse({ type: 'postgres', url: postgresUrl, key_file: join(dir, 'bench.db.key') }) : local, key, { cacheSize: 0 });
  try {
    await store.addUsers(names.map((username) => ({ username })));
    const der = publicKey.export({ type: 'spki', format: 'der' });
    for (let i = 0; i < names.length; i += 200) {
      await Promise.all(names.slice(i, i + 200).map((name) => store.devices.add({
        id: `dev-${name}`, username: name, name: `bench phone ${name}`, publicKey: der, tokenHash: createHash('sha256').update(tokenOf(name), 'utf8').digest(), pushToken: pushTokenOf(name),
      })));
    }
  } finally {
    await store.close();
  }
  const provisionMs = Math.round(performance.now() - t0);
  console.log(`${names.length} users with a device each provisioned in ${provisionMs} ms; nodes from ${FROM_SRC ? 'src/ via tsx (build dist/ for numbers to report)' : 'dist/'}`);
  return { dir, key: privateKey, provisionMs };
}
