/**
 * Closed-loop RADIUS load generator (PAP + appended TOTP code; what each request and reply carries:
 * docs/performance.md). `concurrency` slots each keep exactly one Access-Request outstanding; a reply
 * (or a timeout) frees the slot and the next request leaves at once. Request Authenticators come from
 * a CSPRNG pool: crypto.randomBytes(16) costs ~4.4 µs here, the pool 0.02 µs.
 *
 * Identifiers: up to 128 slots per UDP socket; slot k of a socket alternates between ids k and
 * k + 128, so a late reply to a timed-out request is told apart from the answer to the next one.
 * Nothing is retransmitted. Sockets are the server's own batched ones (recvmmsg/sendmmsg):
 * node:dgram costs ~20 µs per request here, which capped the generator near 43k/s.
 */
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
  /** Number of users u00000..; must match what the server has enrolled. */
  users: 10_000,
  /** All users have this password (first_factor local: one argon2 hash serves all). */
  sharedPassword: undefined as string | undefined,
  concurrency: 64,
  /** Measured window, after the warm-up. */
  seconds: 10,
  warmupSeconds: 2,
  /** A request without a valid reply after this long counts as a timeout and frees its slot. */
  timeoutMs: 2000,
  /** If set, /proc/<pid>/stat is sampled over the window to report the server's CPU use. */
  serverPid: undefined as number | undefined,
};
export type LoadOptions = typeof DEFAULT_LOAD & { port: number; secret: string };
/** One run: the target, the rest from DEFAULT_LOAD. */
export type LoadJob = Partial<LoadOptions> & Pick<LoadOptions, 'port' | 'secret'>;
/** What runLoad reports: counts and rates over the measured window only. */
export type LoadResult = Awaited<ReturnType<typeof runLoad>>;

const LIMITS = { seconds: [0.5, 120], warmupSeconds: [0, 30], concurrency: [1, 8192], users: [1, 1_000_000], timeoutMs: [50, 30_000] } as const;
const PER_SOCKET = 128;

/**
 * Where the next run's users start: after the last one the previous run sent, so that a run repeated within
 * one 30 s step (a disturbed run re-run by the load gate) sends no code our server already took (a replay).
 */
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
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const srv0 = o.serverPid !== undefined ? procCpuSeconds(o.serverPid) : undefined;
  const cores0 = coreTicks();
  const drops0 = serverSocketDrops(o.port);
  const wall0 = performance.now();
  measuring = true;
  await sleep(o.seconds * 1000);
  measuring = false;
  const windowSeconds = (performance.now() - wall0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const srv1 = o.serverPid !== undefined ? procCpuSeconds(o.serverPid) : undefined;
  const coresBusy = busyPercent(cores0, coreTicks());
  const drops1 = serverSocketDrops(o.port);
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
    serverSocketDrops: drops0 !== undefined && drops1 !== undefined ? drops1 - drops0 : undefined,
    /** Where the reply's Message-Authenticator was: [first, not first, missing, bad]. */
    replyMessageAuthenticator: [ma[0]!, ma[1]!, ma[2]!, ma[3]! + ma[4]!],
    latency: hist.summary(),
    generator: { cpuPercent: r1((cpu.user + cpu.system) / 10_000 / windowSeconds), eventLoopUtilization: Math.round(elu.utilization * 1000) / 1000 },
    server: o.serverPid !== undefined && srv0 !== undefined && srv1 !== undefined
      ? { pid: o.serverPid, cpuPercent: r1(((srv1 - srv0) / windowSeconds) * 100), answeredPerCpuSecond: srv1 > srv0 ? Math.round(answered / (srv1 - srv0)) : NaN }
      : undefined,
    /** Busy % of each core over the window (all processes): shows load from outside the bench. */
    coresBusy,
  };
}
