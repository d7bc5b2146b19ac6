/**
 * Closed-loop RADIUS load generator (PAP + appended TOTP code), our own.
 *
 * `concurrency` slots each keep exactly one Access-Request outstanding; a reply (or a timeout)
 * frees the slot and the next request leaves at once. Every request gets a fresh random Request
 * Authenticator (from a CSPRNG pool: crypto.randomBytes(16) costs ~4.4 µs here, the pool 0.02 µs),
 * Message-Authenticator as its FIRST attribute, User-Name from a set of `users` enrolled users
 * (round-robin by default), User-Password = password + current 6-digit TOTP code (RFC 6238,
 * cached per user and 30 s step) hidden per RFC 2865 §5.2, and NAS-Identifier. Each reply's
 * Response Authenticator is verified (and its Message-Authenticator, if `verifyReplyMa`).
 *
 * Identifiers: 256 per UDP socket; sockets are added so no socket carries more than 128 slots,
 * which leaves ids free to park ids of timed-out requests (a late reply to them is counted as
 * `late`, never matched to a newer request). Nothing is retransmitted.
 *
 * Run alone:
 *   node --import tsx bench/load.ts --host 127.0.0.1 --port 1812 --secret s \
 *     --users 10000 --concurrency 64 --seconds 10 [--warmup 2] [--json]
 */
import { randomFillSync } from 'node:crypto';
import { hmacMd5Key } from '../src/radius/md5.js';
import { coreTicks, procCpuSeconds, serverSocketDrops } from './proc.js';
import { Peer, UdpSocket } from '../src/radius/udp-socket.js';
import { CODE, MA_BAD, MA_FIRST, MA_MALFORMED, MA_MISSING, MA_NOT_FIRST, checkReplyMessageAuthenticator, packetLength, verifyResponseAuthenticator, writeAccessRequest } from './packet.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { DEFAULT_USER_SEED, makeUsers, totpCode, totpStep } from './users.js';

export type LoadOptions = {
  host: string;
  port: number;
  secret: string;
  /** Number of users u00000..; must match what the server has enrolled (same seed). */
  users: number;
  userSeed: string;
  /** All users have this password (our first_factor local variant: one argon2 hash for all). */
  sharedPassword: string | undefined;
  /** Outstanding requests. */
  concurrency: number;
  /** Measured window, after the warm-up. */
  seconds: number;
  warmupSeconds: number;
  /** A request without a valid reply after this long counts as a timeout and frees its slot. */
  timeoutMs: number;
  /** UDP sockets; default ceil(concurrency / 128). */
  sockets: number;
  nasIdentifier: string;
  pick: 'round-robin' | 'random';
  /** 'password+code': User-Password = password + code; 'code': only the 6 digits. */
  passwordMode: 'password+code' | 'code';
  /** Also check the reply's Message-Authenticator and where it sits. */
  verifyReplyMa: boolean;
  /** If set, /proc/<pid>/stat is sampled over the window to report the server's CPU use. */
  serverPid: number | undefined;
};

export type LoadResult = {
  target: string;
  options: Omit<LoadOptions, 'secret'>;
  windowSeconds: number;
  sent: number;
  answered: number;
  answeredPerSec: number;
  accept: number;
  reject: number;
  challenge: number;
  other: number;
  badAuthenticator: number;
  malformed: number;
  timeouts: number;
  /** Replies to requests that had already timed out. */
  late: number;
  /** Replies whose Identifier matched nothing outstanding. */
  unknown: number;
  /** Requests the kernel dropped at the server's socket during the window (receive buffer full), if readable. */
  serverSocketDrops: number | undefined;
  replyMessageAuthenticator: { first: number; notFirst: number; missing: number; bad: number };
  latency: LatencySummary;
  /** Answered per second of the window, to see whether the rate was steady. */
  perSecond: number[];
  generator: { cpuPercent: number; userPercent: number; systemPercent: number; eventLoopUtilization: number };
  server: { pid: number; cpuPercent: number; answeredPerCpuSecond: number } | undefined;
  /** Busy share of each core over the window (all processes): shows load from outside the bench. */
  cores: Array<{ cpu: number; busyPercent: number; stealPercent: number }>;
};

export const DEFAULT_LOAD: Omit<LoadOptions, 'port' | 'secret'> = {
  host: '127.0.0.1',
  users: 10_000,
  userSeed: DEFAULT_USER_SEED,
  sharedPassword: undefined,
  concurrency: 64,
  seconds: 10,
  warmupSeconds: 2,
  timeoutMs: 2000,
  sockets: 0,
  nasIdentifier: 'bench-nas',
  pick: 'round-robin',
  passwordMode: 'password+code',
  verifyReplyMa: true,
  serverPid: undefined,
};

const LIMITS = { seconds: [1, 120], warmupSeconds: [0, 30], concurrency: [1, 8192], users: [1, 1_000_000], timeoutMs: [50, 30_000] } as const;

function clamp(name: keyof typeof LIMITS, v: number): number {
  const [lo, hi] = LIMITS[name];
  if (!Number.isFinite(v) || v < lo || v > hi) throw new Error(`${name} must be in ${lo}..${hi}, got ${v}`);
  return v;
}

const FREE = -1;
const PARKED = -2;
const IDS = 256;

export async function runLoad(input: Partial<LoadOptions> & Pick<LoadOptions, 'port' | 'secret'>): Promise<LoadResult> {
  const o: LoadOptions = { ...DEFAULT_LOAD, ...input };
  clamp('seconds', o.seconds);
  clamp('warmupSeconds', o.warmupSeconds);
  clamp('concurrency', o.concurrency);
  clamp('users', o.users);
  clamp('timeoutMs', o.timeoutMs);
  const nSockets = o.sockets > 0 ? o.sockets : Math.max(1, Math.ceil(o.concurrency / 128));
  if (o.concurrency > nSockets * 192) throw new Error(`${nSockets} sockets cannot carry ${o.concurrency} outstanding requests (max 192 each)`);

  const secret = Buffer.from(o.secret);
  const maKey = hmacMd5Key(secret);
  const nas = Buffer.from(o.nasIdentifier);

  // Users: names, first-factor passwords, per-user code cache (6 ASCII digits per user).
  const users = makeUsers(o.users, o.userSeed, o.sharedPassword);
  const names = users.map((u) => Buffer.from(u.name));
  const empty = Buffer.alloc(0);
  const passwords = users.map((u) => (o.passwordMode === 'code' ? empty : Buffer.from(u.password)));
  const codeBytes = Buffer.alloc(o.users * 6);
  const codes = users.map((_, i) => codeBytes.subarray(i * 6, i * 6 + 6));
  const codeStep = new Float64Array(o.users).fill(-1);
  const codeFor = (u: number): Buffer => {
    const step = totpStep(Date.now());
    if (codeStep[u] !== step) {
      codeBytes.write(totpCode(users[u]!.key, step), u * 6, 'latin1');
      codeStep[u] = step;
    }
    return codes[u]!;
  };
  let rr = 0;
  const nextUser = o.pick === 'random' ? () => (Math.random() * o.users) | 0 : () => {
    const u = rr;
    rr = rr + 1 === o.users ? 0 : rr + 1;
    return u;
  };

  // Request Authenticators come from a CSPRNG pool refilled 4096 at a time; each is used once.
  const raPool = Buffer.alloc(16 * 4096);
  let raOff = raPool.length;

  // Slots and identifiers.
  const slotSock = new Uint16Array(o.concurrency);
  const slotId = new Int16Array(o.concurrency).fill(-1);
  const slotSent = new Float64Array(o.concurrency);
  const slotBuf: Buffer[] = [];
  for (let s = 0; s < o.concurrency; s++) {
    slotSock[s] = s % nSockets;
    slotBuf.push(Buffer.alloc(4096));
  }
  const idSlot = new Int32Array(nSockets * IDS).fill(FREE);
  const parkedUntil = new Float64Array(nSockets * IDS);
  let parkedCount = 0;
  const freeRing = new Uint8Array(nSockets * IDS);
  const freeHead = new Int32Array(nSockets);
  const freeCount = new Int32Array(nSockets).fill(IDS);
  for (let k = 0; k < nSockets; k++) for (let i = 0; i < IDS; i++) freeRing[k * IDS + i] = i;
  const waiting: number[] = []; // slots with no free id on their socket (only after many timeouts)

  // Counters (reset when the window opens).
  let measuring = false;
  let running = true;
  let windowStart = 0;
  let sent = 0, accept = 0, reject = 0, challenge = 0, other = 0, badAuth = 0, malformed = 0, timeouts = 0, late = 0, unknown = 0;
  const ma = [0, 0, 0, 0, 0];
  const hist = new LatencyHistogram();
  const perSecond = new Float64Array(Math.ceil(o.seconds) + 1);
  let outstanding = 0;

  const sockets: UdpSocket[] = [];
  const server = Peer.ipv4(o.host, o.port);
  const issue = (s: number): void => {
    const k = slotSock[s]!;
    if (freeCount[k] === 0) {
      waiting.push(s);
      return;
    }
    // FIFO reuse: a freed id waits behind the other ~128+ free ids before it is used again.
    const id = freeRing[k * IDS + freeHead[k]!]!;
    freeHead[k] = (freeHead[k]! + 1) & 255;
    freeCount[k]!--;
    idSlot[k * IDS + id] = s;
    slotId[s] = id;
    const buf = slotBuf[s]!;
    if (raOff === raPool.length) {
      randomFillSync(raPool);
      raOff = 0;
    }
    for (let i = 0; i < 16; i++) buf[4 + i] = raPool[raOff + i]!;
    raOff += 16;
    const u = nextUser();
    const len = writeAccessRequest(buf, id, names[u]!, passwords[u]!, codeFor(u), nas, secret, maKey);
    slotSent[s] = performance.now();
    outstanding++;
    if (measuring) sent++;
    sockets[k]!.send(buf.subarray(0, len), server);
  };
  const releaseId = (k: number, id: number): void => {
    idSlot[k * IDS + id] = FREE;
    freeRing[k * IDS + ((freeHead[k]! + freeCount[k]!) & 255)] = id;
    freeCount[k]!++;
  };

  const onMessage = (k: number, msg: Buffer): void => {
    const now = performance.now();
    const len = packetLength(msg);
    if (len < 0) {
      if (measuring) malformed++;
      return;
    }
    const id = msg[1]!;
    const s = idSlot[k * IDS + id]!;
    if (s < 0) {
      if (measuring) s === PARKED ? late++ : unknown++;
      return;
    }
    const buf = slotBuf[s]!;
    // RFC 2865 §3: a reply whose Response Authenticator does not verify is silently discarded.
    if (!verifyResponseAuthenticator(msg, len, buf, 4, secret)) {
      if (measuring) badAuth++;
      return;
    }
    if (measuring) {
      if (o.verifyReplyMa) ma[checkReplyMessageAuthenticator(msg, len, buf, 4, maKey)]!++;
      const code = msg[0];
      if (code === CODE.AccessAccept) accept++;
      else if (code === CODE.AccessReject) reject++;
      else if (code === CODE.AccessChallenge) challenge++;
      else other++;
      hist.record(now - slotSent[s]!);
      perSecond[Math.min(perSecond.length - 1, ((now - windowStart) / 1000) | 0)]!++;
    }
    releaseId(k, id);
    slotId[s] = -1;
    outstanding--;
    if (running) issue(s);
  };

  for (let k = 0; k < nSockets; k++) {
    // The server's own batched sockets (recvmmsg/sendmmsg): node:dgram costs ~20 µs per request here, which
    // capped the generator near 43k/s, below what the server can answer.
    const sock = await UdpSocket.bind({
      host: '0.0.0.0',
      port: 0,
      receiveBufferBytes: 4 * 1024 * 1024,
      onMessage: (msg) => onMessage(k, msg),
      onSendRefused: () => undefined, // the request times out and is counted
    });
    sockets.push(sock);
  }

  const tick = setInterval(() => {
    const now = performance.now();
    for (let s = 0; s < o.concurrency; s++) {
      const id = slotId[s]!;
      if (id < 0 || now - slotSent[s]! < o.timeoutMs) continue;
      const k = slotSock[s]!;
      if (measuring) timeouts++;
      idSlot[k * IDS + id] = PARKED;
      parkedUntil[k * IDS + id] = now + 2 * o.timeoutMs;
      parkedCount++;
      slotId[s] = -1;
      outstanding--;
      if (running) issue(s);
    }
    if (parkedCount > 0) {
      for (let i = 0; i < idSlot.length; i++) {
        if (idSlot[i] !== PARKED || parkedUntil[i]! > now) continue;
        parkedCount--;
        releaseId((i / IDS) | 0, i % IDS);
      }
    }
    while (running && waiting.length > 0 && freeCount[slotSock[waiting[0]!]!]! > 0) issue(waiting.shift()!);
  }, 50);

  let cpu0 = process.cpuUsage();
  let elu0 = performance.eventLoopUtilization();
  let cores0 = coreTicks();
  let wall0 = 0;

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  for (let s = 0; s < o.concurrency; s++) issue(s);
  await sleep(o.warmupSeconds * 1000);

  // Open the window.
  sent = accept = reject = challenge = other = badAuth = malformed = timeouts = late = unknown = 0;
  ma.fill(0);
  hist.reset();
  cpu0 = process.cpuUsage();
  elu0 = performance.eventLoopUtilization();
  const srv0 = o.serverPid !== undefined ? procCpuSeconds(o.serverPid) : undefined;
  cores0 = coreTicks();
  const drops0 = serverSocketDrops(o.port);
  wall0 = performance.now();
  windowStart = wall0;
  measuring = true;
  await sleep(o.seconds * 1000);

  // Close the window.
  measuring = false;
  const wallMs = performance.now() - wall0;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const srv1 = o.serverPid !== undefined ? procCpuSeconds(o.serverPid) : undefined;
  const cores1 = coreTicks();
  const drops1 = serverSocketDrops(o.port);
  running = false;
  const drainUntil = performance.now() + o.timeoutMs + 100;
  while (outstanding > 0 && performance.now() < drainUntil) await sleep(20);
  clearInterval(tick);
  for (const sk of sockets) sk.close();

  const answered = accept + reject + challenge + other;
  const windowSeconds = wallMs / 1000;
  const pct = (us: number) => Math.round((us / 1000 / wallMs) * 1000) / 10;
  const { secret: _omit, ...shown } = o;
  void _omit;
  return {
    target: `${o.host}:${o.port}`,
    options: { ...shown, sockets: nSockets },
    windowSeconds: Math.round(windowSeconds * 1000) / 1000,
    sent,
    answered,
    answeredPerSec: Math.round(answered / windowSeconds),
    accept,
    reject,
    challenge,
    other,
    badAuthenticator: badAuth,
    malformed,
    timeouts,
    late,
    unknown,
    serverSocketDrops: drops0 !== undefined && drops1 !== undefined ? drops1 - drops0 : undefined,
    replyMessageAuthenticator: { first: ma[MA_FIRST]!, notFirst: ma[MA_NOT_FIRST]!, missing: ma[MA_MISSING]!, bad: ma[MA_BAD]! + ma[MA_MALFORMED]! },
    latency: hist.summary(),
    perSecond: Array.from(perSecond.subarray(0, Math.floor(o.seconds))),
    generator: {
      cpuPercent: pct(cpu.user + cpu.system),
      userPercent: pct(cpu.user),
      systemPercent: pct(cpu.system),
      eventLoopUtilization: Math.round(elu.utilization * 1000) / 1000,
    },
    server: o.serverPid !== undefined && srv0 !== undefined && srv1 !== undefined
      ? {
          pid: o.serverPid,
          cpuPercent: Math.round(((srv1 - srv0) / windowSeconds) * 1000) / 10,
          answeredPerCpuSecond: srv1 > srv0 ? Math.round(answered / (srv1 - srv0)) : NaN,
        }
      : undefined,
    cores: cores1.map(([busy, steal, total], cpu) => {
      const [b0, s0, t0] = cores0[cpu] ?? [0, 0, 0];
      const dt = total - t0 || 1;
      return { cpu, busyPercent: Math.round(((busy - b0) / dt) * 1000) / 10, stealPercent: Math.round(((steal - s0) / dt) * 1000) / 10 };
    }),
  };
}

/** One-line human summary of a result. */
