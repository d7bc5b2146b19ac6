/**
 * Push approval benchmark (issue 3): N Access-Requests held at once waiting for the phone, then
 * every one approved over the Mobile App API.
 *
 * - Our server runs as its own process (bench/push-server.mjs: what `radius-mfa serve` builds from
 *   dist/, with `--inspect=127.0.0.1:0` so the bench can force a full GC before reading memory),
 *   pinned to core 0 when there are 2+ cores; RADIUS and HTTP on loopback; `first_factor: none` (no
 *   password hashing in the numbers), `default_method: push`, `push.timeout` 10 min, push rate limit
 *   1000 per user, `log.level: warn`. Its PushSender hands (token, request id) to the bench over IPC
 *   instead of FCM: the simulated phones learn their request ids as from a data message.
 * - The store (temp dir) gets N users u00000.. with one device each, written through the store API.
 *   One ECDSA P-256 key pair is shared by all devices (cheap to set up and sign with); the server
 *   still verifies each answer against the device's own stored public key.
 * - Requests: our own encoder (test/helpers/udp.ts buildAccessRequest: User-Name, User-Password,
 *   NAS-Identifier, Calling-Station-Id, Message-Authenticator), 250 per UDP socket, at most 100
 *   outstanding (sent, not yet pushed); a request whose push did not arrive (datagram dropped by a
 *   full socket buffer) is re-sent byte for byte and counted.
 * - Memory: VmRSS (/proc/PID/status) and V8 heap after a full GC, after a warm-up of full push
 *   cycles and again with all N held. Then `--get-sample` devices call GET /pending (cost of a poll
 *   with N held).
 * - Latency: approve-to-Accept = from just before the answer POST is written to the Access-Accept
 *   (Response Authenticator verified) arriving on the request's UDP socket. First a paced phase
 *   (`--rate` answers/s, so the number is latency and not queueing) for the first `--paced` users,
 *   whose requests bench/push-approver.mjs sends, approves and times while this process waits; then
 *   the rest from here, all at once over `--concurrency` keep-alive connections (throughput =
 *   answers / (last Accept - first POST)). Before the server starts, the floor: the same approver,
 *   count and rate against a bare node:http server on the server's core.
 * - Checks: every request got exactly one Access-Accept; every answer got 200 {status: approved}.
 * - Diagnostics (env): BENCH_PUSH_NODE_ARGS (server node flags), BENCH_PUSH_PACED_PROFILE=FILE (CPU
 *   profile of the paced phase), BENCH_PUSH_PACED_DUMP=FILE (CSV per paced approval: epoch ms, HTTP
 *   and Accept latency), BENCH_PUSH_GC_LOG=FILE (the server's GC pauses, same epoch clock).
 *
 *   node --import tsx bench/push.ts [--users 10000] [--rate 250] [--paced 2500] [--concurrency 64]
 *                                   [--get-sample 1000] [--json] [--no-docs] [--no-pin] [--keep-dir]
 *   node --import tsx bench/push.ts --docs-from RESULT.json   (docs section from a saved --json line)
 *
 * Prints a summary, replaces the "## Push" section of docs/performance.md (unless --no-docs) and
 * with --json prints the result as the last line. Bounded: stops itself (and the server) after 110 s.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, sign as ecdsaSign } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { resolveEncryptionKey } from '../src/mfa/secret-box.js';
import { Attr } from '../src/radius/packet.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { buildAccessRequest, decodeReply } from '../test/helpers/udp.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { InspectorSession, inspectorUrlIn, type MemoryUsage } from './inspector.js';
import { freeTcpPort, freeUdpPort } from '../test/helpers/ports.js';
import { canPin, spawnOnCore } from './processes.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FROM_SRC = process.env.BENCH_OURS_FROM_SRC === '1' || !existsSync(join(REPO, 'dist', 'app.js'));
const SECRET = 'bench-push-secret-0123456789';
const PER_SOCKET = 250;
const WARMUP_USERS = 300;
/** Approvals per second in the warm-up (which also compiles the approver's own code). */
const WARMUP_RATE = 1000;
const HARD_LIMIT_MS = 110_000;
const SERVER_CPU = 0;
const CLIENT_CPU = 1;
/** The server child and the temp dir: killed / removed on the hard limit or a signal (they must not outlive the bench). */
let serverChild: ChildProcess | undefined;
let workDir: string | undefined;

function abort(code: number): never {
  serverChild?.kill('SIGKILL');
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  process.exit(code);
}

export type PushBenchResult = {
  startedAt: string;
  machine: { cpu: string; cores: number; node: string; pinned: boolean; backgroundBusyPercent: number[]; loadavg: number[] };
  server: string;
  users: number;
  sharedKeyPair: true;
  provisionMs: number;
  /** After a forced full GC (inspector) unless named otherwise. */
  memory: {
    baselineRssMiB: number;
    heldRssMiB: number;
    extraRssMiB: number;
    perHeldRssKiB: number;
    baselineHeapMiB: number;
    heldHeapMiB: number;
    extraHeapMiB: number;
    perHeldHeapKiB: number;
    /** RSS right after the requests arrived, before any forced GC: what `top` would show then. */
    heldRssNoGcMiB: number;
    endRssMiB: number;
    peakRssMiB: number;
  };
  hold: { ms: number; retransmitted: number; missingAtFirst: number; serverCpuMsPerHeld: number; requestToPush: LatencySummary };
  polls: { count: number; latency: LatencySummary; serverCpuMsPerPoll: number; wrong: number };
  paced: { count: number; ratePerSec: number; latency: LatencySummary; httpLatency: LatencySummary; serverCpuMsPerApproval: number };
  /** The same paced answers to a bare node:http server: what the machine adds by itself. */
  floor: LatencySummary | undefined;
  burst: { count: number; concurrency: number; seconds: number; approvalsPerSec: number; latency: LatencySummary; serverCpuMsPerApproval: number };
  accepts: number;
  rejects: number;
  failures: string[];
  targets: { rssMiB: number; p99Ms: number; rssMet: boolean; p99Met: boolean };
  durationSeconds: number;
};

type Options = { users: number; rate: number; paced: number; concurrency: number; getSample: number; json: boolean; docs: boolean; pin: boolean; keepDir: boolean };

function parseOptions(argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      users: { type: 'string', default: '10000' },
      rate: { type: 'string', default: '250' },
      paced: { type: 'string', default: '2500' },
      concurrency: { type: 'string', default: '64' },
      'get-sample': { type: 'string', default: '1000' },
      json: { type: 'boolean', default: false },
      'no-docs': { type: 'boolean', default: false },
      'no-pin': { type: 'boolean', default: false },
      'keep-dir': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const num = (name: string, s: string, lo: number, hi: number) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`--${name} must be a whole number in ${lo}..${hi}`);
    return n;
  };
  const users = num('users', v.users, 1, 100_000);
  return {
    users,
    rate: num('rate', v.rate, 1, 5000),
    paced: Math.min(users, num('paced', v.paced, 0, 100_000)),
    concurrency: num('concurrency', v.concurrency, 1, 1024),
    getSample: Math.min(users, num('get-sample', v['get-sample'], 0, 100_000)),
    json: v.json,
    docs: !v['no-docs'],
    pin: !v['no-pin'],
    keepDir: v['keep-dir'],
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (kib: number) => Math.round((kib / 1024) * 10) / 10;
const userName = (i: number) => (i < 0 ? `w${String(-i - 1).padStart(4, '0')}` : `u${String(i).padStart(5, '0')}`);
/** Deterministic bearer token per device (the store keeps only its SHA-256, as activation does). */
const tokenOf = (name: string) => createHash('sha256').update(`bench-push-token:${name}`).digest('base64url');
const pushTokenOf = (name: string) => `bench-fcm-${name}`;

/** Full GC in the server, then its memory: VmRSS from /proc (what the OS charges) and V8's heap. */
async function measureMemory(inspectorUrl: string, pid: number): Promise<{ rssKiB: number; usage: MemoryUsage }> {
  const session = await InspectorSession.connect(inspectorUrl);
  try {
    const usage = await session.collectGarbageAndMeasure();
    return { rssKiB: procStatus(pid).rssKiB, usage };
  } finally {
    session.close();
  }
}

function procStatus(pid: number): { rssKiB: number; hwmKiB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
}

/** utime + stime of the process in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
}

/** Waits until the server has used no CPU for `quietMs` (it has worked through what it was sent). */
async function settle(pid: number, quietMs = 300, maxMs = 10_000): Promise<void> {
  const until = Date.now() + maxMs;
  let last = cpuMs(pid);
  let quietSince = Date.now();
  while (Date.now() < until) {
    await sleep(50);
    const now = cpuMs(pid);
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= quietMs) return;
  }
}

async function backgroundBusy(ms: number): Promise<number[]> {
  const ticks = () =>
    readFileSync('/proc/stat', 'utf8').split('\n').filter((l) => /^cpu\d+ /.test(l))
      .map((l) => l.trim().split(/\s+/).slice(1, 9).map(Number)).map((v) => [v.reduce((x, y) => x + y, 0), v[3]! + v[4]!] as const);
  try {
    const before = ticks();
    await sleep(ms);
    return ticks().map(([total, idle], i) => Math.round((1 - (idle - before[i]![1]) / Math.max(1, total - before[i]![0])) * 1000) / 10);
  } catch {
    return [];
  }
}

function writeConfig(dir: string, authPort: number, httpPort: number): string {
  const cfg = join(dir, 'config.yaml');
  writeFileSync(cfg, `# Written by bench/push.ts
listen:
  auth: "127.0.0.1:${authPort}"
clients:
  - name: bench
    address: 127.0.0.1
    secret: ${JSON.stringify(SECRET)}
first_factor:
  type: none
mfa:
  default_method: push
  reject_delay: 0
  lockout:
    max_failures: 0
  push:
    timeout: 10m
    rate_limit:
      max: 1000
      window: 10m
http:
  listen: "127.0.0.1:${httpPort}"
store:
  path: ${JSON.stringify(join(dir, 'bench.db'))}
log:
  level: ${process.env.BENCH_PUSH_LOG_LEVEL ?? 'warn'}
`);
  return cfg;
}

/** N users + one device each (and the warm-up users), through the store API; one P-256 public key for all. */
async function provision(dir: string, indexes: number[], publicKeyDer: Buffer): Promise<void> {
  const storeConfig = { type: 'sqlite' as const, path: join(dir, 'bench.db'), encryption_key: undefined, key_file: undefined };
  const store = openSqliteStore(storeConfig, resolveEncryptionKey(storeConfig).key, { cacheSize: 0 });
  try {
    await store.addUsers(indexes.map((i) => ({ username: userName(i) })));
    for (const i of indexes) {
      const name = userName(i);
      await store.devices.add({ id: `dev-${name}`, username: name, name: `bench phone ${name}`, publicKey: publicKeyDer, tokenHash: createHash('sha256').update(tokenOf(name), 'utf8').digest(), pushToken: pushTokenOf(name) });
    }
  } finally {
    store.close();
  }
}

type HttpReply = { status: number; body: unknown };

function http(agent: Agent, port: number, method: string, path: string, token: string, body?: unknown, onWritten?: () => void): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpRequest(
      { agent, host: '127.0.0.1', port, method, path, headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined }));
      },
    );
    req.on('error', reject);
    onWritten?.();
    req.end(payload);
  });
}

/** Runs `jobs` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, job: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await job(items[next++]!);
  }));
}

/** Sockets for `count` users; user k (0-based within the set) uses socket k/250 with identifier k%250. */
class RequestSet {
  readonly sockets: Socket[] = [];
  readonly requests: Buffer[] = [];
  readonly acceptedAt: Float64Array;
  readonly code: Uint8Array;
  readonly sentAt: Float64Array;
  /** Request id per user, from the push the server sent (IPC); '' until it arrives. */
  readonly ids: string[];
  readonly pushedAt: Float64Array;
  pushes = 0;
  private waiters: (() => void)[] = [];
  received = 0;
  unverified = 0;
  duplicates = 0;

  protected constructor(readonly indexes: number[], readonly port: number) {
    this.acceptedAt = new Float64Array(indexes.length);
    this.code = new Uint8Array(indexes.length);
    this.sentAt = new Float64Array(indexes.length);
    this.ids = new Array<string>(indexes.length).fill('');
    this.pushedAt = new Float64Array(indexes.length);
  }

  /** The server pushed request `id` to this set's user `k`. */
  onPush(k: number, id: string): void {
    if (!this.ids[k]) this.pushes++;
    this.ids[k] = id;
    this.pushedAt[k] = performance.now();
    const w = this.pushWaiters;
    this.pushWaiters = [];
    for (const f of w) f();
  }

  private pushWaiters: (() => void)[] = [];

  private nextPush(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(1, timeoutMs));
      this.pushWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  static async open(indexes: number[], port: number): Promise<RequestSet> {
    const set = new RequestSet(indexes, port);
    set.build();
    const n = Math.ceil(indexes.length / PER_SOCKET);
    for (let s = 0; s < n; s++) {
      const socket = createSocket('udp4');
      await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
      socket.setRecvBufferSize(4 * 1024 * 1024);
      socket.on('message', (msg) => set.onReply(s * PER_SOCKET + msg[1]!, msg, performance.now()));
      set.sockets.push(socket);
    }
    return set;
  }

  protected build(): void {
    this.indexes.forEach((i, k) => {
      this.requests.push(
        buildAccessRequest({
          secret: SECRET,
          identifier: k % PER_SOCKET,
          userName: userName(i),
          password: 'not-checked',
          attributes: [
            [Attr.NasIdentifier, 'bench-vpn'],
            [Attr.CallingStationId, `198.51.100.${k % 250}`],
          ],
        }),
      );
    });
  }

  /** The reply to user k's request, received at `at` (performance.now()). */
  protected onReply(k: number, msg: Buffer, at: number): void {
    const request = this.requests[k];
    if (!request) return;
    if (!decodeReply(msg, request, SECRET).verified) {
      this.unverified++;
      return;
    }
    if (this.code[k] !== 0) {
      this.duplicates++;
      return;
    }
    this.code[k] = msg[0]!;
    this.acceptedAt[k] = at;
    this.received++;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(k: number): void {
    this.sentAt[k] = performance.now();
    this.sockets[Math.floor(k / PER_SOCKET)]!.send(this.requests[k]!, this.port, '127.0.0.1');
  }

  /**
   * Sends these requests (default all) as fast as the server takes them: at most `window` sent and
   * not yet pushed. The server's socket buffer (net.core.rmem_default, 208 KiB) holds only a few
   * hundred datagrams; a burst beyond that is dropped by the kernel. A request whose push has not
   * come 200 ms after the window filled counts as lost (it is re-sent later) and frees its place.
   */
  async sendWindowed(ks: readonly number[] = this.requests.map((_, k) => k), window = 100): Promise<void> {
    const pushedBefore = this.pushes;
    let sent = 0;
    let givenUp = 0;
    for (const k of ks) {
      const deadline = performance.now() + 200;
      while (sent - (this.pushes - pushedBefore) - givenUp >= window) {
        const left = deadline - performance.now();
        if (left <= 0) {
          givenUp = sent - (this.pushes - pushedBefore) - window + 1;
          break;
        }
        await this.nextPush(left);
      }
      this.send(k);
      sent++;
    }
  }

  async waitForReplies(count: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.received < count) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  close(): void {
    for (const s of this.sockets) s.close();
  }
}

type ApproverResult = { timeOrigin: number; postedAt: Float64Array; httpAt: Float64Array; acceptedAt: Float64Array; replies: (Uint8Array | null)[]; duplicates: number; failures: string[] };

/**
 * Requests sent from, approved by and answered to bench/push-approver.mjs, a process that holds
 * nothing else: the latency it times is the server's, not this process's garbage collections.
 * Its times (postedAt, acceptedAt) are on its own clock, so they are only subtracted from each other.
 */
class ApproverSet extends RequestSet {
  private constructor(indexes: number[], port: number, private readonly approver: ChildProcess) {
    super(indexes, port);
  }

  /** Spawns the approver (on the bench's core); one process serves one set after another. */
  static spawnApprover(pin: boolean): ChildProcess {
    const options = { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] as ('ignore' | 'inherit' | 'ipc')[], serialization: 'advanced' as const };
    return spawnOnCore(pin ? CLIENT_CPU : undefined, process.execPath, [join(REPO, 'bench', 'push-approver.mjs')], options);
  }

  static async openOn(approver: ChildProcess, indexes: number[], port: number, httpPort: number): Promise<ApproverSet> {
    const set = new ApproverSet(indexes, port, approver);
    set.build();
    approver.send(['init', { port, httpPort, requests: set.requests, tokens: indexes.map((i) => tokenOf(userName(i))) }]);
    await set.reply('ready');
    return set;
  }

  override send(k: number): void {
    this.sentAt[k] = performance.now();
    this.approver.send(['send', k]);
  }

  /**
   * The approver answers every request, `rate` per second; fills postedAt (its clock) and the replies.
   * With `ids` given it posts those instead (the floor, where no server sent a push), waiting for no reply.
   */
  async approve(rate: number, signatures: string[], postedAt: Float64Array, httpHist: LatencyHistogram, failures: string[], ids?: string[]): Promise<ApproverResult> {
    this.approver.send(['approve', { rate, ids: ids ?? this.ids, signatures, lingerMs: 10_000, expectReplies: !ids }]);
    const r = (await this.reply('done')) as ApproverResult;
    r.replies.forEach((reply, k) => {
      postedAt[k] = r.postedAt[k]!;
      if (r.httpAt[k]) httpHist.record(r.httpAt[k]! - r.postedAt[k]!);
      if (reply) this.onReply(k, Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength), r.acceptedAt[k]!);
    });
    this.duplicates += r.duplicates;
    failures.push(...r.failures);
    return r;
  }

  private reply(kind: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const onMessage = ([k, body]: [string, unknown]) => {
        if (k !== kind) return;
        this.approver.off('message', onMessage).off('exit', onExit);
        resolve(body);
      };
      const onExit = (code: number) => reject(new Error(`bench/push-approver.mjs exited ${code}`));
      this.approver.on('message', onMessage).once('exit', onExit);
    });
  }
}

/** With BENCH_PUSH_PACED_DUMP=FILE: one CSV row per paced approval, on the epoch clock BENCH_PUSH_GC_LOG uses too. */
function dumpPaced(r: ApproverResult): void {
  const file = process.env.BENCH_PUSH_PACED_DUMP;
  if (!file) return;
  const rows = Array.from(r.postedAt, (at, k) => `${(r.timeOrigin + at).toFixed(3)},${(r.httpAt[k]! - at).toFixed(3)},${(r.acceptedAt[k]! - at).toFixed(3)}`);
  writeFileSync(file, `posted_epoch_ms,http_ms,accept_ms\n${rows.join('\n')}\n`);
}

/** Sends every request and re-sends (paced) those whose push has not come: returns how many were re-sent. */
async function holdAll(set: RequestSet, pid: number): Promise<{ missingAtFirst: number; retransmitted: number }> {
  await set.sendWindowed();
  let missingAtFirst = -1;
  let retransmitted = 0;
  for (let round = 0; round < 6; round++) {
    await settle(pid, 300);
    const missing = set.ids.map((id, k) => (id ? -1 : k)).filter((k) => k >= 0);
    if (missingAtFirst < 0) missingAtFirst = missing.length;
    if (missing.length === 0) return { missingAtFirst, retransmitted };
    await set.sendWindowed(missing);
    retransmitted += missing.length;
  }
  throw new Error(`${set.ids.filter((id) => !id).length} requests got no push after 5 re-sends (${set.received} were answered)`);
}

/** `count` devices poll GET /pending with everything held: latency per poll, and each sees its own request. */
async function samplePolls(set: RequestSet, agent: Agent, httpPort: number, count: number, pid: number): Promise<{ latency: LatencySummary; serverCpuMsPerPoll: number; wrong: number }> {
  const hist = new LatencyHistogram();
  let wrong = 0;
  const step = Math.max(1, Math.floor(set.indexes.length / Math.max(1, count)));
  const ks = Array.from({ length: count }, (_, j) => (j * step) % set.indexes.length);
  const cpu0 = cpuMs(pid);
  await pool(ks, 4, async (k) => {
    const name = userName(set.indexes[k]!);
    const t = performance.now();
    const r = await http(agent, httpPort, 'GET', '/api/v1/pending', tokenOf(name));
    hist.record(performance.now() - t);
    const items = r.status === 200 ? (r.body as { id: string }[]) : [];
    if (items.length !== 1 || items[0]!.id !== set.ids[k]) wrong++;
  });
  return { latency: hist.summary(), serverCpuMsPerPoll: count ? Math.round(((cpuMs(pid) - cpu0) / count) * 1000) / 1000 : 0, wrong };
}

function signAll(ids: string[], privateKey: ReturnType<typeof generateKeyPairSync>['privateKey']): string[] {
  return ids.map((id) => ecdsaSign('sha256', Buffer.from(`${id}.approve`, 'utf8'), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64'));
}

async function answer(agent: Agent, httpPort: number, set: RequestSet, k: number, id: string, signature: string, postedAt: Float64Array, failures: string[]): Promise<void> {
  const name = userName(set.indexes[k]!);
  const r = await http(agent, httpPort, 'POST', `/api/v1/requests/${id}/answer`, tokenOf(name), { decision: 'approve', signature }, () => (postedAt[k] = performance.now()));
  if (r.status !== 200 || (r.body as { status?: string }).status !== 'approved') failures.push(`${name}: answer ${r.status} ${JSON.stringify(r.body)}`);
}

/** A full cycle for the warm-up users: every code path the measurement uses runs (and is compiled) first. */
async function warmUp(server: Server, port: number, httpPort: number, pid: number, privateKey: ReturnType<typeof generateKeyPairSync>['privateKey'], approver: ChildProcess): Promise<void> {
  const indexes = Array.from({ length: WARMUP_USERS }, (_, i) => -i - 1);
  const set = await ApproverSet.openOn(approver, indexes, port, httpPort);
  server.route(set);
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  try {
    await holdAll(set, pid);
    await samplePolls(set, agent, httpPort, WARMUP_USERS, pid);
    const failures: string[] = [];
    await set.approve(WARMUP_RATE, signAll(set.ids, privateKey), new Float64Array(indexes.length), new LatencyHistogram(), failures);
    if (set.received !== indexes.length) failures.push(`${set.received}/${indexes.length} replies`);
    if (failures.length) throw new Error(`warm-up: ${failures.slice(0, 3).join('; ')}`);
  } finally {
    agent.destroy();
  }
}

/** The floor's server: node:http answering every POST as the answer endpoint does, nothing else. */
const FLOOR_SERVER = `
const server = require('node:http').createServer((req, res) => {
  req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end('{"status":"approved"}'));
});
server.listen(Number(process.argv[1]), '127.0.0.1', () => process.send('up'));
process.once('disconnect', () => process.exit(0));`;

/**
 * What this machine adds by itself: the paced phase's approvals (same approver, rate, count, cores)
 * against a bare node:http server that does nothing but answer. Its tail is the floor for ours.
 */
async function measureFloor(approver: ChildProcess, indexes: number[], rate: number, pin: boolean): Promise<LatencySummary> {
  const port = await freeTcpPort();
  const floorServer = spawnOnCore(pin ? SERVER_CPU : undefined, process.execPath, ['-e', FLOOR_SERVER, String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    await new Promise((resolve, reject) => floorServer.once('message', resolve).once('exit', (code) => reject(new Error(`floor server exited ${code}`))));
    const set = await ApproverSet.openOn(approver, indexes, 0, port);
    const hist = new LatencyHistogram();
    const failures: string[] = [];
    const ids = indexes.map((_, k) => `floor-${k}`);
    await set.approve(rate, ids.map(() => 'x'), new Float64Array(indexes.length), hist, failures, ids);
    if (failures.length) throw new Error(`floor: ${failures.slice(0, 3).join('; ')}`);
    return hist.summary();
  } finally {
    floorServer.kill();
  }
}

/**
 * With BENCH_PUSH_PACED_PROFILE=FILE.cpuprofile: a CPU profile of the server during the paced phase
 * only (through the inspector; summarize it with bench/profile-summary.ts).
 */
async function startPacedProfile(inspectorUrl: string): Promise<{ stop: () => Promise<void> } | undefined> {
  const file = process.env.BENCH_PUSH_PACED_PROFILE;
  if (!file) return undefined;
  const session = await InspectorSession.connect(inspectorUrl);
  await session.call('Profiler.enable');
  await session.call('Profiler.setSamplingInterval', { interval: 100 });
  await session.call('Profiler.start');
  return {
    stop: async () => {
      const { profile } = await session.call<{ profile: unknown }>('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      session.close();
    },
  };
}

type Server = {
  child: ChildProcess;
  logFile: string;
  inspector: string;
  /** Pushes (IPC) for these sets' users go to them from now on. */
  route: (...sets: RequestSet[]) => void;
  stop: () => Promise<void>;
};

async function startServer(cfg: string, dir: string, httpPort: number, pin: boolean): Promise<Server> {
  const logFile = join(dir, 'serve.log');
  const fd = openSync(logFile, 'w');
  const profile = process.env.BENCH_PUSH_PROFILE_DIR;
  // --inspect on loopback: the bench forces a full GC before each memory reading (bench/inspector.ts).
  const extra = (process.env.BENCH_PUSH_NODE_ARGS ?? '').split(' ').filter(Boolean); // e.g. --trace-gc
  const args = ['--inspect=127.0.0.1:0', ...extra, ...(profile ? ['--cpu-prof', '--cpu-prof-dir', profile] : []), ...(FROM_SRC ? ['--import', 'tsx'] : []), join(REPO, 'bench', 'push-server.mjs'), cfg];
  const options = { cwd: REPO, stdio: ['ignore', fd, fd, 'ipc'] as ('ignore' | number | 'ipc')[], env: { ...process.env, BENCH_PUSH_FROM_SRC: FROM_SRC ? '1' : '0' } };
  const child = spawnOnCore(pin ? SERVER_CPU : undefined, process.execPath, args, options);
  closeSync(fd);
  serverChild = child;
  let route = new Map<string, { set: RequestSet; k: number }>();
  child.on('message', (m: [string, string]) => {
    const to = route.get(m[0]);
    if (to) to.set.onPush(to.k, m[1]);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const agent = new Agent({ keepAlive: false });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
    // HTTP listens after the RADIUS sockets are bound: once it answers, both are up.
    const up = await http(agent, httpPort, 'GET', '/api/v1/openapi.json', 'x'.repeat(20)).then((r) => r.status === 200, () => false);
    if (up) break;
    if (Date.now() > deadline) throw new Error(`server not up after 20 s:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
    await sleep(100);
  }
  agent.destroy();
  const inspector = inspectorUrlIn(readFileSync(logFile, 'utf8'));
  if (!inspector) throw new Error('no "Debugger listening on ws://..." line from the server');
  return {
    child,
    logFile,
    inspector,
    route: (...sets) => {
      route = new Map(sets.flatMap((set) => set.indexes.map((i, k) => [pushTokenOf(userName(i)), { set, k }] as const)));
    },
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

export async function runPushBench(o: Options): Promise<PushBenchResult> {
  const t0 = Date.now();
  const log = (s: string) => process.stderr.write(`push bench: ${s}\n`);
  const background = await backgroundBusy(1000);
  const loadavgAtStart = loadavg().map((x) => Math.round(x * 100) / 100);
  if (background.some((b) => b > 15)) log(`WARNING other processes keep the cores busy (${background.map((b, i) => `cpu${i} ${b}%`).join(', ')}; load average ${loadavgAtStart.join(' ')}): latency numbers will be inflated`);
  const pin = o.pin && canPin();
  if (pin) spawnSync('taskset', ['-a', '-p', '-c', String(CLIENT_CPU), String(process.pid)], { stdio: 'ignore' });
  const dir = mkdtempSync(join(tmpdir(), 'bench-push-'));
  if (!o.keepDir) workDir = dir;
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let set: RequestSet | undefined;
  let approver: ChildProcess | undefined;
  const agents: Agent[] = [];
  try {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publicKeyDer = publicKey.export({ type: 'spki', format: 'der' });
    const indexes = Array.from({ length: o.users }, (_, i) => i);
    const [authPort, httpPort] = [await freeUdpPort(), await freeTcpPort()];
    const cfg = writeConfig(dir, authPort, httpPort);
    let t = performance.now();
    await provision(dir, [...indexes, ...Array.from({ length: WARMUP_USERS }, (_, i) => -i - 1)], publicKeyDer);
    const provisionMs = Math.round(performance.now() - t);
    log(`${o.users} users with a device each provisioned in ${provisionMs} ms; starting bench/push-server.mjs (${FROM_SRC ? 'src/ via tsx' : 'dist/'})${pin ? ` on core ${SERVER_CPU}, bench on core ${CLIENT_CPU}` : ' (not pinned)'}`);
    server = await startServer(cfg, dir, httpPort, pin);
    const pid = server.child.pid!;

    approver = ApproverSet.spawnApprover(pin);
    const floor = o.paced ? await measureFloor(approver, indexes.slice(0, o.paced), o.rate, pin) : undefined;
    if (floor) log(`floor: ${o.paced} answers at ${o.rate}/s to a bare node:http server: p50 ${floor.p50Ms} ms, p99 ${floor.p99Ms} ms`);
    await warmUp(server, authPort, httpPort, pid, privateKey, approver);
    await settle(pid);
    const base = await measureMemory(server.inspector, pid);
    const cpuBefore = cpuMs(pid);

    // The paced users' requests come from the approver, the rest from this process.
    const pacedSet = await ApproverSet.openOn(approver, indexes.slice(0, o.paced), authPort, httpPort);
    set = await RequestSet.open(indexes.slice(o.paced), authPort);
    const sets = [pacedSet, set];
    server.route(...sets);
    t = performance.now();
    let missingAtFirst = 0;
    let retransmitted = 0;
    for (const s of sets) {
      const r = await holdAll(s, pid);
      missingAtFirst += r.missingAtFirst;
      retransmitted += r.retransmitted;
    }
    const holdMs = Math.round(performance.now() - t);
    const heldNoGc = procStatus(pid);
    const cpuHeld = cpuMs(pid) - cpuBefore;
    const answeredEarly = pacedSet.received + set.received;
    if (answeredEarly > 0) throw new Error(`${answeredEarly} requests were answered before any approval`);
    // All N held (the server pushed each one): what it retains for them.
    const held = await measureMemory(server.inspector, pid);
    log(`${o.users} requests held in ${holdMs} ms (${missingAtFirst} datagrams dropped and re-sent); after a full GC: RSS ${mib(base.rssKiB)} -> ${mib(held.rssKiB)} MiB, heap ${mib(base.usage.heapUsed / 1024)} -> ${mib(held.usage.heapUsed / 1024)} MiB`);
    const pushHist = new LatencyHistogram();
    for (const s of sets) s.pushedAt.forEach((at, k) => at > s.sentAt[k]! && pushHist.record(at - s.sentAt[k]!));

    const getAgent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
    agents.push(getAgent);
    const polls = await samplePolls(set.indexes.length ? set : pacedSet, getAgent, httpPort, o.getSample, pid);
    if (polls.wrong) throw new Error(`${polls.wrong} devices did not see exactly their own request in /pending`);
    log(`${o.getSample} GET /pending with ${o.users} held: p50 ${polls.latency.p50Ms} ms, p99 ${polls.latency.p99Ms} ms, ${polls.serverCpuMsPerPoll} ms server CPU each`);
    const signatures = signAll(set.ids, privateKey);
    const pacedSignatures = signAll(pacedSet.ids, privateKey);
    await settle(pid, 200);
    const failures: string[] = [];

    // Paced: one answer every 1/rate s from the approver, so each meets an idle server; this process waits.
    const pacedHttp = new LatencyHistogram();
    const pacedPostedAt = new Float64Array(o.paced);
    const profiler = await startPacedProfile(server.inspector);
    const cpuPaced0 = cpuMs(pid);
    dumpPaced(await pacedSet.approve(o.rate, pacedSignatures, pacedPostedAt, pacedHttp, failures));
    await profiler?.stop();
    if (pacedSet.received !== o.paced) failures.push(`paced: only ${pacedSet.received}/${o.paced} replies`);
    const cpuPaced = cpuMs(pid) - cpuPaced0;
    const pacedHist = new LatencyHistogram();
    pacedSet.acceptedAt.forEach((at, k) => at && pacedHist.record(at - pacedPostedAt[k]!));
    log(`paced ${o.paced} approvals at ${o.rate}/s: approve-to-Accept p50 ${pacedHist.summary().p50Ms} ms, p99 ${pacedHist.summary().p99Ms} ms`);

    // All at once: the rest, as fast as `concurrency` keep-alive connections carry them.
    await settle(pid, 200);
    const burst = set.indexes.map((_, k) => k);
    const postedAt = new Float64Array(burst.length);
    const cpuBurst0 = cpuMs(pid);
    const burstStart = performance.now();
    await pool(burst, o.concurrency, (k) => answer(getAgent, httpPort, set!, k, set!.ids[k]!, signatures[k]!, postedAt, failures));
    if (!(await set.waitForReplies(burst.length, 20_000))) failures.push(`burst: only ${set.received}/${burst.length} replies`);
    let lastAccept = burstStart;
    const burstHist = new LatencyHistogram();
    for (const k of burst) {
      if (!set.acceptedAt[k]) continue;
      lastAccept = Math.max(lastAccept, set.acceptedAt[k]!);
      burstHist.record(set.acceptedAt[k]! - postedAt[k]!);
    }
    await settle(pid, 200);
    const cpuBurst = cpuMs(pid) - cpuBurst0;
    const burstSeconds = (lastAccept - burstStart) / 1000;
    const end = procStatus(pid);

    let accepts = 0;
    let rejects = 0;
    for (const s of sets) {
      for (const code of s.code) {
        if (code === 2) accepts++;
        else if (code === 3) rejects++;
      }
      if (s.unverified) failures.push(`${s.unverified} replies did not verify`);
      if (s.duplicates) failures.push(`${s.duplicates} duplicate replies`);
    }
    if (accepts !== o.users) failures.push(`${accepts}/${o.users} Access-Accept (${rejects} Access-Reject)`);

    const extraHeld = mib(held.rssKiB - base.rssKiB);
    const heapKiB = (u: MemoryUsage) => (u.heapUsed + u.external) / 1024;
    const p99 = pacedHist.summary().p99Ms;
    return {
      startedAt: new Date(t0).toISOString(),
      machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, pinned: pin, backgroundBusyPercent: background, loadavg: loadavgAtStart },
      server: FROM_SRC ? 'bench/push-server.mjs running src/ via tsx (no dist/: run npm run build for the numbers to report)' : 'bench/push-server.mjs running dist/',
      users: o.users,
      sharedKeyPair: true,
      provisionMs,
      memory: {
        baselineRssMiB: mib(base.rssKiB),
        heldRssMiB: mib(held.rssKiB),
        extraRssMiB: extraHeld,
        perHeldRssKiB: Math.round(((held.rssKiB - base.rssKiB) / o.users) * 100) / 100,
        baselineHeapMiB: mib(heapKiB(base.usage)),
        heldHeapMiB: mib(heapKiB(held.usage)),
        extraHeapMiB: mib(heapKiB(held.usage) - heapKiB(base.usage)),
        perHeldHeapKiB: Math.round(((heapKiB(held.usage) - heapKiB(base.usage)) / o.users) * 100) / 100,
        heldRssNoGcMiB: mib(heldNoGc.rssKiB),
        endRssMiB: mib(end.rssKiB),
        peakRssMiB: mib(end.hwmKiB),
      },
      hold: { ms: holdMs, retransmitted, missingAtFirst, serverCpuMsPerHeld: Math.round((cpuHeld / o.users) * 1000) / 1000, requestToPush: pushHist.summary() },
      polls: { count: o.getSample, ...polls },
      floor,
      paced: { count: o.paced, ratePerSec: o.rate, latency: pacedHist.summary(), httpLatency: pacedHttp.summary(), serverCpuMsPerApproval: o.paced ? Math.round((cpuPaced / o.paced) * 1000) / 1000 : 0 },
      burst: {
        count: burst.length,
        concurrency: o.concurrency,
        seconds: Math.round(burstSeconds * 1000) / 1000,
        approvalsPerSec: burst.length ? Math.round(burst.length / burstSeconds) : 0,
        latency: burstHist.summary(),
        serverCpuMsPerApproval: burst.length ? Math.round((cpuBurst / burst.length) * 1000) / 1000 : 0,
      },
      accepts,
      rejects,
      failures,
      targets: { rssMiB: 64, p99Ms: 5, rssMet: extraHeld <= 64, p99Met: p99 <= 5 },
      durationSeconds: Math.round((Date.now() - t0) / 1000),
    };
  } catch (err) {
    if (server) process.stderr.write(`push bench: server log tail:\n${readFileSync(server.logFile, 'utf8').slice(-2000)}\n`);
    throw err;
  } finally {
    for (const a of agents) a.destroy();
    set?.close();
    approver?.kill();
    await server?.stop();
    if (!o.keepDir) rmSync(dir, { recursive: true, force: true });
  }
}

export function formatPushResult(r: PushBenchResult): string {
  const l = (s: LatencySummary) => `p50 ${s.p50Ms} ms, p90 ${s.p90Ms} ms, p99 ${s.p99Ms} ms, max ${s.maxMs} ms`;
  const m = r.memory;
  return [
    `Push: ${r.users} requests held at once, then approved over the Mobile App API (${r.server}${r.machine.pinned ? '; server on core 0, bench on core 1' : ''})`,
    `  background load before the run: ${r.machine.backgroundBusyPercent.map((b, i) => `cpu${i} ${b}%`).join(', ')}; load average ${r.machine.loadavg.join(' ')}`,
    `  server memory after a full GC: RSS ${m.baselineRssMiB} -> ${m.heldRssMiB} MiB with ${r.users} held: +${m.extraRssMiB} MiB (${m.perHeldRssKiB} KiB each; target <= ${r.targets.rssMiB} MiB: ${r.targets.rssMet ? 'met' : 'NOT MET'})`,
    `                 V8 heap + external ${m.baselineHeapMiB} -> ${m.heldHeapMiB} MiB: +${m.extraHeapMiB} MiB (${m.perHeldHeapKiB} KiB each)`,
    `                 RSS before any forced GC right after the requests arrived ${m.heldRssNoGcMiB} MiB; at the end ${m.endRssMiB} MiB, peak ${m.peakRssMiB} MiB`,
    `  holding: ${r.users} held in ${r.hold.ms} ms, ${r.hold.serverCpuMsPerHeld} ms server CPU each (${r.hold.missingAtFirst} datagrams dropped by the socket buffer and re-sent); Access-Request -> push handed over: p50 ${r.hold.requestToPush.p50Ms} ms, p99 ${r.hold.requestToPush.p99Ms} ms`,
    `  GET /pending with ${r.users} held (${r.polls.count} devices): p50 ${r.polls.latency.p50Ms} ms, p99 ${r.polls.latency.p99Ms} ms, ${r.polls.serverCpuMsPerPoll} ms server CPU per poll`,
    `  approve-to-Accept, paced (${r.paced.count} at ${r.paced.ratePerSec}/s): ${l(r.paced.latency)} (target p99 <= ${r.targets.p99Ms} ms: ${r.targets.p99Met ? 'met' : 'NOT MET'})`,
    `    answer POST -> HTTP 200, same requests: ${l(r.paced.httpLatency)}; ${r.paced.serverCpuMsPerApproval} ms server CPU per approval`,
    ...(r.floor ? [`    floor, the same answers to a bare node:http server on the same core: ${l(r.floor)}`] : []),
    `  all at once (${r.burst.count} over ${r.burst.concurrency} connections): ${r.burst.approvalsPerSec} approvals/s (${r.burst.seconds} s), ${r.burst.serverCpuMsPerApproval} ms server CPU per approval; approve-to-Accept under that load ${l(r.burst.latency)}`,
    `  result: ${r.accepts}/${r.users} Access-Accept, ${r.rejects} Access-Reject${r.failures.length ? `; FAILURES: ${r.failures.slice(0, 5).join('; ')}` : '; every answer 200 approved'}`,
  ].join('\n');
}

/** Replaces (or appends) the "## Push" section of docs/performance.md. */
export function writePushDocs(r: PushBenchResult, file = join(REPO, 'docs', 'performance.md')): void {
  const l = (s: LatencySummary) => `${s.p50Ms} / ${s.p90Ms} / ${s.p99Ms} / ${s.maxMs}`;
  const m = r.memory;
  const loaded = r.machine.backgroundBusyPercent.some((b) => b > 15);
  const section = `## Push

Written by \`bench/push.ts\` (alone: \`node --import tsx bench/push.ts\`; \`npm run bench\` runs it after the TOTP
runs). ${r.users} users with one device each in a temp store. Our server runs as a child process (${r.server}:
the same composition as \`radius-mfa serve\` except for an IPC PushSender${r.machine.pinned ? '; pinned to core 0, the bench on core 1' : ''};
with \`--inspect=127.0.0.1:0\` so that the bench can force a full GC before each memory reading), RADIUS and HTTP
on loopback, \`first_factor: none\` (no password hashing measured), \`default_method: push\`, \`push.timeout: 10m\`,
push rate limit 1000 per user, \`log.level: warn\`. All devices share one ECDSA P-256 key pair (cheap to set up;
the server still verifies every answer against the device's stored key). Requests come from our own encoder
(Message-Authenticator, User-Name, User-Password, NAS-Identifier, Calling-Station-Id), at most 100 outstanding
(sent, not yet pushed); datagrams the server's socket buffer dropped are re-sent (counted). Every device learns
its request id from the push (the server's PushSender hands it to the bench over IPC instead of FCM), which
confirms all ${r.users} are held before the memory reading; then ${r.polls.count} devices poll \`GET /api/v1/pending\` with
all held. Baseline = after a warm-up of ${WARMUP_USERS} full push cycles. The paced users' requests are sent, approved
and timed by \`bench/push-approver.mjs\`, a process on the bench's core that holds nothing else, while the bench
itself waits: approve-to-Accept = from just before its answer POST is written to the Access-Accept (Response
Authenticator verified) arriving on the request's UDP socket. The floor is the same approver posting the same
number of answers at the same rate to a bare node:http server on the server's core: what this machine adds by
itself. RSS after a full GC varies by a few MiB from run to run; the V8 heap figure is the steadier one.

Run ${r.startedAt}, ${r.machine.cores} cores (${r.machine.cpu}), Node ${r.machine.node}, ${r.durationSeconds} s. Busy before the
run (other processes): ${r.machine.backgroundBusyPercent.map((b, i) => `cpu${i} ${b}%`).join(', ')}, load average ${r.machine.loadavg.join(' ')}${loaded ? ': **a loaded machine; latencies and throughput are inflated by it, the server-CPU-per-operation figures much less so**' : ''}.

| measure | value | target |
|---|---|---|
| server RSS after warm-up (full GC) | ${m.baselineRssMiB} MiB | |
| with ${r.users} requests held (full GC) | ${m.heldRssMiB} MiB: **+${m.extraRssMiB} MiB** (${m.perHeldRssKiB} KiB each) | ≤ 64 MiB extra: ${r.targets.rssMet ? 'met' : '**not met**'} |
| V8 heap + external, same two moments | ${m.baselineHeapMiB} -> ${m.heldHeapMiB} MiB: +${m.extraHeapMiB} MiB (${m.perHeldHeapKiB} KiB each) | |
| RSS right after the requests arrived, no forced GC | ${m.heldRssNoGcMiB} MiB (uncollected garbage included); peak ${m.peakRssMiB} MiB | |
| server CPU per held request | ${r.hold.serverCpuMsPerHeld} ms (${r.hold.missingAtFirst} of ${r.users} datagrams dropped by the socket buffer, re-sent) | |
| Access-Request sent -> push handed to the sender: p50 / p99 | ${r.hold.requestToPush.p50Ms} / ${r.hold.requestToPush.p99Ms} ms | |
| \`GET /pending\` with ${r.users} held, ${r.polls.count} devices: p50 / p99; server CPU per poll | ${r.polls.latency.p50Ms} / ${r.polls.latency.p99Ms} ms; ${r.polls.serverCpuMsPerPoll} ms | |
| approve-to-Accept, paced ${r.paced.ratePerSec}/s, n=${r.paced.count}: p50 / p90 / p99 / max | **${l(r.paced.latency)} ms** | p99 ≤ 5 ms: ${r.targets.p99Met ? 'met' : '**not met**'} |
| answer POST -> HTTP 200, same requests; server CPU per approval | ${l(r.paced.httpLatency)} ms; ${r.paced.serverCpuMsPerApproval} ms | |
${r.floor ? `| floor: the same answers to a bare node:http server (POST -> 200) on the same core | ${l(r.floor)} ms | |
` : ''}| all at once, n=${r.burst.count} over ${r.burst.concurrency} connections | **${r.burst.approvalsPerSec} approvals/s**, ${r.burst.serverCpuMsPerApproval} ms server CPU each | |
| approve-to-Accept under that load: p50 / p90 / p99 / max | ${l(r.burst.latency)} ms (mostly queueing) | |
| result | ${r.accepts}/${r.users} Access-Accept, ${r.rejects} Access-Reject${r.failures.length ? `, failures: ${r.failures.slice(0, 3).join('; ')}` : ''} | all Accept |
`;
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '# Performance\n';
  const start = current.search(/^## Push$/m);
  let next = start < 0 ? -1 : current.slice(start + 1).search(/^## /m);
  if (next >= 0) next += start + 1;
  const updated = start < 0 ? `${current.trimEnd()}\n\n${section}` : `${current.slice(0, start)}${section}${next >= 0 ? `\n${current.slice(next)}` : ''}`;
  writeFileSync(file, updated);
}

/** For `npm run bench`: runs this file as a child pinned to `cpu` (so its affinity does not leak), prints and returns the result. */
export function runPushBenchChild(args: string[] = [], cpu = CLIENT_CPU): Promise<PushBenchResult | undefined> {
  const node = [process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url), ...args, '--json'];
  const options = { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] as ('ignore' | 'pipe' | 'inherit' | 'ipc')[] };
  const child = spawnOnCore(canPin() ? cpu : undefined, node[0]!, node.slice(1), options);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      const lines = out.trim().split('\n');
      const last = lines.at(-1) ?? '';
      process.stdout.write(`\n${(last.startsWith('{') ? lines.slice(0, -1) : lines).join('\n')}\n`);
      try {
        resolve(JSON.parse(lines.at(-1) ?? '') as PushBenchResult);
      } catch {
        console.log(`push bench: exited ${code} without a result; no push numbers`);
        resolve(undefined);
      }
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && process.argv[2] === '--docs-from') {
  // node --import tsx bench/push.ts --docs-from RESULT.json: (re)write the docs section from a saved --json result.
  const r = JSON.parse(readFileSync(process.argv[3]!, 'utf8').trim().split('\n').pop()!) as PushBenchResult;
  writePushDocs(r);
  console.log(formatPushResult(r));
} else if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const o = parseOptions(process.argv.slice(2));
  const hardStop = setTimeout(() => {
    console.error(`push bench: hard limit of ${HARD_LIMIT_MS / 1000} s reached; stopping`);
    abort(3);
  }, HARD_LIMIT_MS);
  hardStop.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => abort(130));
  // Started by `npm run bench` (runPushBenchChild) with an IPC channel: if that process goes, so do we.
  const orphaned = () => abort(130);
  process.once('disconnect', orphaned);
  try {
    const r = await runPushBench(o);
    console.log(formatPushResult(r));
    if (o.docs) {
      writePushDocs(r);
      console.log('push bench: wrote the "## Push" section of docs/performance.md');
    }
    if (o.json) console.log(JSON.stringify(r));
    process.exitCode = r.failures.length ? 1 : 0;
  } catch (err) {
    console.error(`push bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  }
  process.off('disconnect', orphaned);
  if (process.connected) process.disconnect();
}
