// Closed-loop RADIUS load generator (PAP + appended TOTP code: docs/performance.md): `concurrency` slots
// each keep one Access-Request outstanding, a reply or a timeout sends the next; nothing is retransmitted.
// Request Authenticators come from a CSPRNG pool (randomBytes(16) ~4.4 µs here, the pool 0.02 µs). Slot k
// of a socket (128 each) alternates between ids k and k + 128: a late reply to a timed-out request is not
// taken for the next one's. Sockets are the server's batched ones (node:dgram's ~20 µs/request capped us near 43k/s).
import { randomFillSync } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { hmacMd5Key } from '../src/radius/md5.js';
import { Peer, UdpSocket } from '../src/radius/udp-socket.js';
import { busyPercent, coreTicks, procCpuSeconds, serverSocketDrops } from './proc.js';
import { CODE, checkReplyMessageAuthenticator, packetLength, verifyResponseAuthenticator, writeAccessRequest } from './packet.js';
import { LatencyHistogram } from './histogram.js';
import { makeUsers, totpCode, totpStep } from './users.js';

const DEFAULT_LOAD = {
  host: '127.0.0.1',
  /** Users u00000..: what the server has enrolled. */
  users: 10_000,
  /** All users have this password (first_factor local: one argon2 hash serves all). */
  sharedPassword: undefined as string | undefined,
  concurrency: 64,
  seconds: 10,
  warmupSeconds: 2,
  /** A request without a valid reply after this long counts as a timeout and frees its slot. */
  timeoutMs: 2000,
  /** The server's CPU use over the window, from /proc/<pid>/stat. */
  serverPid: undefined as number | undefined,
};
export type LoadOptions = typeof DEFAULT_LOAD & { port: number; secret: string };
/** One run: the target, the rest from DEFAULT_LOAD. */
export type LoadJob = Partial<LoadOptions> & Pick<LoadOptions, 'port' | 'secret'>;
/** What runLoad reports: counts and rates over the measured window only. */
export type LoadResult = Awaited<ReturnType<typeof runLoad>>;

const LIMITS = { seconds: [0.5, 120], warmupSeconds: [0, 30], concurrency: [1, 8192], users: [1, 1_000_000], timeoutMs: [50, 30_000] } as const;
const PER_SOCKET = 128;

/** The next run starts after the last user this one sent: a run re-run within one 30 s step (the load gate) sends no replay. */
let resumeUser = 0;

export async function runLoad(input: LoadJob) {
  const o: LoadOptions = { ...DEFAULT_LOAD, ...input };
  for (const [k, [lo, hi]] of Object.entries(LIMITS)) {
    const v = o[k as keyof typeof LIMITS];
    if (!Number.isFinite(v) || v < lo || v > hi) throw new Error(`${k} must be in ${lo}..${hi}, got ${v}`);
  }
  const secret = Buffer.from(o.secret);
  const maKey = hmacMd5Key(secret);
  const nas = Buffer.from('bench-nas');
  const users = makeUsers(o.users, o.sharedPassword);
  const names = users.map((u) => Buffer.from(u.name));
  const passwords = users.map((u) => Buffer.from(u.password));
  const codeBytes = Buffer.alloc(o.users * 6);
  const codeStep = new Float64Array(o.users).fill(-1);
  const codeFor = (u: number): Buffer => {
    const step = totpStep();
    if (codeStep[u] !== step) {
      codeBytes.write(totpCode(users[u]!.key, step), u * 6, 'latin1');
      codeStep[u] = step;
    }
    return codeBytes.subarray(u * 6, u * 6 + 6);
  };
  let nextUser = resumeUser % o.users;
  const raPool = Buffer.alloc(16 * 4096);
  let raOff = raPool.length;

  const slotId = new Int16Array(o.concurrency).fill(-1); // id of the slot's outstanding request, -1 = none
  const slotLast = new Int16Array(o.concurrency).fill(-1);
  const slotSent = new Float64Array(o.concurrency);
  const slotBuf = Array.from({ length: o.concurrency }, () => Buffer.alloc(4096));
  let measuring = false;
  let running = true;
  let accept = 0, reject = 0, other = 0, badAuth = 0, timeouts = 0, late = 0;
  const ma = [0, 0, 0, 0, 0];
  const hist = new LatencyHistogram();

  const sockets: UdpSocket[] = [];
  const server = Peer.ipv4(o.host, o.port);
  const issue = (s: number): void => {
    const buf = slotBuf[s]!;
    if (raOff === raPool.length) {
      randomFillSync(raPool);
      raOff = 0;
    }
    raPool.copy(buf, 4, raOff, raOff + 16);
    raOff += 16;
    const u = nextUser;
    nextUser = nextUser + 1 === o.users ? 0 : nextUser + 1;
    const k = s % PER_SOCKET;
    const id = slotLast[s] === k ? k + PER_SOCKET : k; // the other of its two ids than last time
    slotId[s] = slotLast[s] = id;
    const len = writeAccessRequest(buf, id, names[u]!, passwords[u]!, codeFor(u), nas, secret, maKey);
    slotSent[s] = performance.now();
    sockets[(s / PER_SOCKET) | 0]!.send(buf.subarray(0, len), server);
  };

  const onMessage = (sock: number, msg: Buffer): void => {
    const now = performance.now();
    const len = packetLength(msg);
    const id = msg[1]!;
    const s = sock * PER_SOCKET + (id % PER_SOCKET);
    if (len < 0 || s >= o.concurrency || slotId[s] !== id) {
      if (measuring) late++;
      return;
    }
    const buf = slotBuf[s]!;
    // RFC 2865 §3: a reply whose Response Authenticator does not verify is silently discarded.
    if (!verifyResponseAuthenticator(msg, len, buf, 4, secret)) {
      if (measuring) badAuth++;
      return;
    }
    if (measuring) {
      ma[checkReplyMessageAuthenticator(msg, len, buf, 4, maKey)]!++;
      if (msg[0] === CODE.AccessAccept) accept++;
      else if (msg[0] === CODE.AccessReject) reject++;
      else other++;
      hist.record(now - slotSent[s]!);
    }
    slotId[s] = -1;
    if (running) issue(s);
  };

  for (let k = 0; k * PER_SOCKET < o.concurrency; k++) {
    sockets.push(await UdpSocket.bind({
      host: '0.0.0.0', port: 0, receiveBufferBytes: 4 * 1024 * 1024,
      onMessage: (msg) => onMessage(k, msg),
      onSendRefused: () => undefined, // the request times out and is counted
    }));
  }
  const tick = setInterval(() => {
    const now = performance.now();
    for (let s = 0; s < o.concurrency; s++) {
      if (slotId[s]! < 0 || now - slotSent[s]! < o.timeoutMs) continue;
      if (measuring) timeouts++;
      if (running) issue(s);
    }
  }, 50);

  for (let s = 0; s < o.concurrency; s++) issue(s);
  await sleep(o.warmupSeconds * 1000);

  accept = reject = other = badAuth = timeouts = late = 0;
  ma.fill(0);
  hist.reset();
  const probe = () => ({
    cpu: process.cpuUsage(), elu: performance.eventLoopUtilization(), cores: coreTicks(), drops: serverSocketDrops(o.port),
    srv: o.serverPid === undefined ? undefined : procCpuSeconds(o.serverPid), at: performance.now(),
  });
  const p0 = probe();
  measuring = true;
  await sleep(o.seconds * 1000);
  measuring = false;
  const p1 = probe();
  const windowSeconds = (p1.at - p0.at) / 1000;
  running = false;
  resumeUser = nextUser;
  await sleep(200); // the last replies, so the server is idle before the next run
  clearInterval(tick);
  for (const sk of sockets) sk.close();

  const answered = accept + reject + other;
  const { secret: _omit, ...options } = o;
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return {
    target: `${o.host}:${o.port}`,
    options: options as Omit<LoadOptions, 'secret'>,
    windowSeconds: Math.round(windowSeconds * 1000) / 1000,
    answered,
    answeredPerSec: Math.round(answered / windowSeconds),
    // badAuthenticator: replies whose Response Authenticator did not verify (discarded, as a NAS does);
    // late: replies to requests that had already timed out.
    accept, reject, other, badAuthenticator: badAuth, timeouts, late,
    /** Requests the kernel dropped at the server's socket during the window (receive buffer full), if readable. */
    serverSocketDrops: p0.drops !== undefined && p1.drops !== undefined ? p1.drops - p0.drops : undefined,
    /** Where the reply's Message-Authenticator was: [first, not first, missing, bad]. */
    replyMessageAuthenticator: [ma[0]!, ma[1]!, ma[2]!, ma[3]! + ma[4]!],
    latency: hist.summary(),
    generator: {
      cpuPercent: r1((p1.cpu.user - p0.cpu.user + p1.cpu.system - p0.cpu.system) / 10_000 / windowSeconds),
      eventLoopUtilization: Math.round(performance.eventLoopUtilization(p1.elu, p0.elu).utilization * 1000) / 1000,
    },
    server: o.serverPid !== undefined && p0.srv !== undefined && p1.srv !== undefined
      ? { pid: o.serverPid, cpuPercent: r1(((p1.srv - p0.srv) / windowSeconds) * 100), answeredPerCpuSecond: p1.srv > p0.srv ? Math.round(answered / (p1.srv - p0.srv)) : NaN }
      : undefined,
    /** Busy % of each core over the window (all processes): shows load from outside the bench. */
    coresBusy: busyPercent(p0.cores, p1.cores),
  };
}
