/**
 * Push approval benchmark (issue 3): N Access-Requests held at once waiting for the phone, then
 * every one approved over the Mobile App API.
 *
 * - Our server runs as its own process (bench/push-server.mjs: what `radius-mfa serve` builds from
 *   dist/, with `--expose-gc` so the bench can have it collect fully (over IPC) before reading memory),
 *   pinned to core 0 when there are 2+ cores; RADIUS and HTTP on loopback; `first_factor: none` (no
 *   password hashing in the numbers), `default_method: push`, `push.timeout` 10 min, push rate limit
 *   1000 per user, `log.level: warn`. Its PushSender hands (token, request id) to the bench over IPC
 *   instead of FCM: the simulated phones learn their request ids as from a data message.
 * - The store (temp dir) gets N users u00000.. with one device each, written through the store API.
 *   One ECDSA P-256 key pair is shared by all devices (cheap to set up and sign with); the server
 *   still verifies each answer against the device's own stored public key.
 * - Requests: the bench's encoder (bench/packet.ts: Message-Authenticator first, User-Name,
 *   User-Password, NAS-Identifier, Calling-Station-Id), held and sent by bench/push-approver.mjs (a
 *   process that holds nothing else), 250 per UDP socket, at most 100 outstanding (sent, not yet
 *   pushed); a request whose push did not arrive (datagram dropped by a full socket buffer) is re-sent
 *   byte for byte and counted.
 * - Memory: VmRSS (/proc/PID/status) and V8 heap after a full GC, after a warm-up of full push
 *   cycles and again with all N held. Then `--get-sample` devices call GET /pending (cost of a poll
 *   with N held).
 * - Latency: approve-to-Accept = from just before the answer POST is written to the Access-Accept
 *   (Response Authenticator verified) arriving on the request's UDP socket. First a paced phase
 *   (`--rate` answers/s, so the number is latency and not queueing) for the first `--paced` users,
 *   which the approver posts and times while this process waits; then the rest, all at once over
 *   `--concurrency` keep-alive connections (throughput = answers / (last Accept - first POST)). Before the server starts, the floor: the same approver,
 *   count and rate against a bare node:http server on the server's core.
 * - Checks: every request got exactly one Access-Accept; every answer got 200 {status: approved}.
 * - Diagnostics (env): BENCH_PUSH_NODE_ARGS (server node flags, e.g. --trace-gc),
 *   BENCH_PUSH_PACED_PROFILE=FILE (CPU profile of the paced phase), BENCH_PUSH_LOG_LEVEL=info.
 *
 *   node --import tsx bench/push.ts [--users 10000] [--rate 250] [--paced 2500] [--concurrency 64]
 *                                   [--get-sample 1000] [--json] [--no-pin] [--keep-dir]
 *
 * Prints a summary and, with --json, the result as the last line; docs/performance.md is updated by
 * hand from those numbers. Bounded: stops itself (and the server) after 110 s.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { freeTcpPort, freeUdpPort } from './ports.js';
import { formatLoad, machineLoad, procStatus } from './proc.js';
import { writeBenchConfig } from './config.js';
import { FROM_SRC, canPin } from './servers.js';
import { GENERATOR_CPU, SECRET, SERVER_CPU } from './stage.js';
import { HARD_LIMIT_MS, WARMUP_USERS, running, procCpuMs, settle, mib } from './push-common.js';
import { RequestSet, holdAll, samplePolls, signAll } from './push-requests.js';
import { measureFloor, provision, startServer, warmUp, type MemoryUsage } from './push-setup.js';

function abort(code: number): never {
  running.child?.kill('SIGKILL');
  if (running.dir) rmSync(running.dir, { recursive: true, force: true });
  process.exit(code);
}

export type PushBenchResult = Awaited<ReturnType<typeof runPushBench>>;

type Options = { users: number; rate: number; paced: number; concurrency: number; getSample: number; json: boolean; pin: boolean; keepDir: boolean };

function parseOptions(argv: string[]): Options {
  const ints = { users: [10_000, 1, 100_000], rate: [250, 1, 5000], paced: [2500, 0, 100_000], concurrency: [64, 1, 1024], 'get-sample': [1000, 0, 100_000] } as const;
  const { values: v } = parseArgs({
    args: argv,
    options: { ...Object.fromEntries(Object.keys(ints).map((k) => [k, { type: 'string' as const }])), json: { type: 'boolean' }, 'no-pin': { type: 'boolean' }, 'keep-dir': { type: 'boolean' } },
    strict: true,
  });
  const num = (name: keyof typeof ints) => {
    const [dflt, lo, hi] = ints[name];
    const n = Number((v as Record<string, unknown>)[name] ?? dflt);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`--${name} must be a whole number in ${lo}..${hi}`);
    return n;
  };
  const users = num('users');
  return {
    users, rate: num('rate'), paced: Math.min(users, num('paced')), concurrency: num('concurrency'), getSample: Math.min(users, num('get-sample')),
    json: v.json === true, pin: v['no-pin'] !== true, keepDir: v['keep-dir'] === true,
  };
}

export async function runPushBench(o: Options) {
  const t0 = Date.now();
  const log = (s: string) => process.stderr.write(`push bench: ${s}\n`);
  const load = await machineLoad(1000);
  log(`before the run: ${formatLoad(load)}${load.outside.some((b) => b > 15) ? ' -- WARNING other processes keep the cores busy: latency numbers will be inflated' : ''}`);
  const pin = o.pin && canPin();
  if (pin) spawnSync('taskset', ['-a', '-p', '-c', String(GENERATOR_CPU), String(process.pid)], { stdio: 'ignore' });
  const dir = mkdtempSync(join(tmpdir(), 'bench-push-'));
  if (!o.keepDir) running.dir = dir;
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let set: RequestSet | undefined;
  let approver: ChildProcess | undefined;
  const agents: Agent[] = [];
  try {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publicKeyDer = publicKey.export({ type: 'spki', format: 'der' });
    const indexes = Array.from({ length: o.users }, (_, i) => i);
    const [authPort, httpPort] = [await freeUdpPort(), await freeTcpPort()];
    const cfg = writeBenchConfig(dir, { authPort, secret: SECRET, firstFactor: 'none', logLevel: process.env.BENCH_PUSH_LOG_LEVEL === 'info' ? 'info' : 'warn', throughput: true, push: { httpPort } });
    let t = performance.now();
    await provision(dir, [...indexes, ...Array.from({ length: WARMUP_USERS }, (_, i) => -i - 1)], publicKeyDer);
    const provisionMs = Math.round(performance.now() - t);
    log(`${o.users} users with a device each provisioned in ${provisionMs} ms; starting bench/push-server.mjs (${FROM_SRC ? 'src/ via tsx' : 'dist/'})${pin ? ` on core ${SERVER_CPU}, bench on core ${GENERATOR_CPU}` : ' (not pinned)'}`);
    server = await startServer(cfg, dir, authPort, pin);
    const pid = server.child.pid!;

    approver = RequestSet.spawnApprover(pin);
    const floor = o.paced ? await measureFloor(approver, indexes.slice(0, o.paced), o.rate, pin) : undefined;
    if (floor) log(`floor: ${o.paced} answers at ${o.rate}/s to a bare node:http server: p50 ${floor.p50Ms} ms, p99 ${floor.p99Ms} ms`);
    await warmUp(server, authPort, httpPort, pid, privateKey, approver);
    await settle(pid);
    const base = await server.memory();
    const cpuBefore = procCpuMs(pid);

    // Users [0, paced) are approved at a steady rate, the rest all at once.
    set = await RequestSet.openOn(approver, indexes, authPort, httpPort);
    server.route(set);
    t = performance.now();
    const { missingAtFirst, retransmitted } = await holdAll(set, pid);
    const holdMs = Math.round(performance.now() - t);
    const heldNoGc = procStatus(pid);
    const cpuHeld = procCpuMs(pid) - cpuBefore;
    // All N held (the server pushed each one): what it retains for them.
    const held = await server.memory();
    log(`${o.users} requests held in ${holdMs} ms (${missingAtFirst} datagrams dropped and re-sent); after a full GC: RSS ${mib(base.rssKiB)} -> ${mib(held.rssKiB)} MiB, heap ${mib(base.usage.heapUsed / 1024)} -> ${mib(held.usage.heapUsed / 1024)} MiB`);
    const pushHist = new LatencyHistogram();
    set.pushedAt.forEach((at, k) => at > set!.sentAt[k]! && pushHist.record(at - set!.sentAt[k]!));

    const getAgent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
    agents.push(getAgent);
    const polls = await samplePolls(set, getAgent, httpPort, o.getSample, pid);
    if (polls.wrong) throw new Error(`${polls.wrong} devices did not see exactly their own request in /pending`);
    log(`${o.getSample} GET /pending with ${o.users} held: p50 ${polls.latency.p50Ms} ms, p99 ${polls.latency.p99Ms} ms, ${polls.serverCpuMsPerPoll} ms server CPU each`);
    const signatures = signAll(set.ids, privateKey);
    await settle(pid, 200);
    const failures: string[] = [];
    const postedAt = new Float64Array(o.users);
    const latency = (from: number, to: number) => {
      const h = new LatencyHistogram();
      for (let k = from; k < to; k++) if (set!.acceptedAt[k]) h.record(set!.acceptedAt[k]! - postedAt[k]!);
      return h;
    };

    // Paced: one answer every 1/rate s from the approver, so each meets an idle server; this process waits.
    const pacedHttp = new LatencyHistogram();
    await server.profile('start');
    const cpuPaced0 = procCpuMs(pid);
    await set.approve({ from: 0, to: o.paced, rate: o.rate, connections: 8, signatures }, postedAt, pacedHttp, failures);
    await server.profile('stop');
    const cpuPaced = procCpuMs(pid) - cpuPaced0;
    const pacedHist = latency(0, o.paced);
    if (pacedHist.summary().count !== o.paced) failures.push(`paced: only ${pacedHist.summary().count}/${o.paced} replies`);
    log(`paced ${o.paced} approvals at ${o.rate}/s: approve-to-Accept p50 ${pacedHist.summary().p50Ms} ms, p99 ${pacedHist.summary().p99Ms} ms`);

    // All at once: the rest, as fast as `concurrency` keep-alive connections carry them.
    await settle(pid, 200);
    const cpuBurst0 = procCpuMs(pid);
    await set.approve({ from: o.paced, to: o.users, rate: 0, connections: o.concurrency, signatures }, postedAt, new LatencyHistogram(), failures);
    const burst = { count: o.users - o.paced, hist: latency(o.paced, o.users) };
    if (burst.hist.summary().count !== burst.count) failures.push(`burst: only ${burst.hist.summary().count}/${burst.count} replies`);
    const burstSeconds = (Math.max(0, ...set.acceptedAt.subarray(o.paced)) - Math.min(Infinity, ...postedAt.subarray(o.paced))) / 1000;
    await settle(pid, 200);
    const cpuBurst = procCpuMs(pid) - cpuBurst0;
    const end = procStatus(pid);

    const accepts = set.code.filter((c) => c === 2).length;
    const rejects = set.code.filter((c) => c === 3).length;
    if (set.unverified) failures.push(`${set.unverified} replies did not verify`);
    if (set.duplicates) failures.push(`${set.duplicates} duplicate replies`);
    if (accepts !== o.users) failures.push(`${accepts}/${o.users} Access-Accept (${rejects} Access-Reject)`);

    const extraHeld = mib(held.rssKiB - base.rssKiB);
    const heapKiB = (u: MemoryUsage) => (u.heapUsed + u.external) / 1024;
    const p99 = pacedHist.summary().p99Ms;
    return {
      startedAt: new Date(t0).toISOString(),
      machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, pinned: pin, load },
      server: FROM_SRC ? 'bench/push-server.mjs running src/ via tsx (no dist/: run npm run build for the numbers to report)' : 'bench/push-server.mjs running dist/',
      users: o.users,
      sharedKeyPair: true as const,
      provisionMs,
      // After a forced full GC, except heldRssNoGcMiB (right after the requests arrived: what `top` showed then).
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
        count: burst.count,
        concurrency: o.concurrency,
        seconds: Math.round(burstSeconds * 1000) / 1000,
        approvalsPerSec: burst.count ? Math.round(burst.count / burstSeconds) : 0,
        latency: burst.hist.summary(),
        serverCpuMsPerApproval: burst.count ? Math.round((cpuBurst / burst.count) * 1000) / 1000 : 0,
      },
      accepts,
      rejects,
      failures,
      targets: { rssMiB: 32, p99Ms: 5, rssMet: extraHeld <= 32, p99Met: p99 <= 5 }, // issue 16: at most 32 MiB more RSS for 10,000 held
      durationSeconds: Math.round((Date.now() - t0) / 1000),
    };
  } catch (err) {
    if (server) process.stderr.write(`push bench: server log tail:\n${readFileSync(server.logFile, 'utf8').slice(-2000)}\n`);
    throw err;
  } finally {
    for (const a of agents) a.destroy();
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
    `  before the run: ${formatLoad(r.machine.load)}`,
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

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const o = parseOptions(process.argv.slice(2));
  const hardStop = setTimeout(() => {
    console.error(`push bench: hard limit of ${HARD_LIMIT_MS / 1000} s reached; stopping`);
    abort(3);
  }, HARD_LIMIT_MS);
  hardStop.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => abort(130));
  // Started by `npm run bench` (scriptStage) with an IPC channel: if that process goes, so do we.
  const orphaned = () => abort(130);
  process.once('disconnect', orphaned);
  try {
    const r = await runPushBench(o);
    console.log(formatPushResult(r));
    if (o.json) console.log(JSON.stringify(r));
    process.exitCode = r.failures.length ? 1 : 0;
  } catch (err) {
    console.error(`push bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  }
  process.off('disconnect', orphaned);
  if (process.connected) process.disconnect();
}
