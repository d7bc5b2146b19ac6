// Stage push (issues 3 and 16; opt-in): `--users` (10,000) requests held at once at one node pinned to
// core 0, this process on core 1 (docs/performance.md). Memory after a full GC, before and with all held;
// GET /pending; approve-to-Accept (from just before the answer POST is written to the verified
// Access-Accept): 2,500 paced at 250/s (latency, not queueing) beside a bare node:http floor, then the
// rest all at once (approvals/s).
import { type KeyObject } from 'node:crypto';
import { Agent } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { CODE } from './packet.js';
import { freeTcpPort } from '../scripts/engines/ports.js';
import { formatLoad, machineLoad, procStatus } from './proc.js';
import { Requests, call, cpuMs, each, formatLatency as l, mib, settle, setUp, startNode, tokenOf, usersNamed, type Node } from './push-harness.js';
import { FROM_SRC, canPin, pinSelf, spawnOnCore } from './servers.js';
import { GENERATOR_CPU, SERVER_CPU, type Ctx, type Stage } from './stage.js';

/** The floor's server: node:http answering every POST as the answer endpoint does, nothing else. */
const FLOOR_SERVER = `
const server = require('node:http').createServer((req, res) => {
  req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end('{"status":"approved"}'));
});
server.listen(Number(process.argv[1]), '127.0.0.1', () => process.send('up'));
process.once('disconnect', () => process.exit(0));`;

/** What this machine adds by itself: the paced answers (same count, rate and cores) to a server that does nothing but answer. */
async function measureFloor(ctx: Ctx, names: string[], rate: number, pin: boolean, key: KeyObject): Promise<LatencySummary> {
  const port = await freeTcpPort();
  const floor = spawnOnCore(pin ? SERVER_CPU : undefined, process.execPath, ['-e', FLOOR_SERVER, String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  ctx.track({ stop: async () => void floor.kill() });
  await new Promise((resolve, reject) => floor.once('message', resolve).once('exit', (code: number) => reject(new Error(`floor server exited ${code}`))));
  const set = await Requests.open(names);
  set.ids.fill('floor');
  const http = await set.approve(port, 0, names.length, rate, 8, key);
  floor.kill();
  if (set.failures.length) throw new Error(`floor: ${set.failures.slice(0, 3).join('; ')}`);
  return http.summary();
}

/** How long the server sits idle with every push held before the settled memory reading. */
const SETTLE_MS = 10_000;
const PUSH = { warmUp: 300, paced: 2500, rate: 250, concurrency: 64, polls: 1000 };

export const pushStage: Stage = {
  name: 'push',
  about: '10,000 held pushes: memory, approve-to-Accept latency, approvals/s (opt-in: --push)',
  estimateMs: (o) => 20_000 + SETTLE_MS + o.users * 3,
  run: async (ctx) => {
    const n = ctx.o.users;
    const paced = Math.min(PUSH.paced, Math.floor(n / 4)); // 2,500 of 10,000; fewer users keep a burst to time too
    const load = await machineLoad(1000);
    console.log(`before the run: ${formatLoad(load)}${load.outside.some((b) => b > ctx.o.gate) ? ' -- WARNING other processes keep the cores busy: latency numbers will be inflated' : ''}`);
    const { dir, key, provisionMs } = await setUp(ctx, 'push', [...usersNamed('u', n), ...usersNamed('w', PUSH.warmUp)]);
    const pin = canPin();
    if (pin) pinSelf(GENERATOR_CPU);
    if (pin) ctx.track({ stop: async () => pinSelf(undefined) });
    const node = ctx.track(await startNode(dir, 'push', pin ? SERVER_CPU : undefined));
    const floor = paced ? await measureFloor(ctx, usersNamed('u', paced), PUSH.rate, pin, key) : undefined;
    if (floor) console.log(`floor: ${paced} answers at ${PUSH.rate}/s to a bare node:http server: ${l(floor)}`);
    // Warm-up: a full cycle for other users, so that every code path the measurement uses has run (and is compiled).
    const warm = await Requests.open(usersNamed('w', PUSH.warmUp), node);
    await warm.hold(100);
    await samplePolls(warm, node, PUSH.warmUp);
    await warm.approve(node.httpPort, 0, PUSH.warmUp, 1000, 8, key);
    warm.close();
    if (warm.check().length) throw new Error(`warm-up: ${warm.check().slice(0, 3).join('; ')}`);
    await settle([node]);
    const base = await node.memory();

    const set = await Requests.open(usersNamed('u', n), node);
    const cpuBefore = cpuMs(node);
    const hold = await set.hold(100);
    const [heldNoGc, cpuHeld] = [procStatus(node.pid), cpuMs(node) - cpuBefore];
    const held = await node.memory();
    // V8 keeps a grown young generation while it sees a high allocation rate; a GC after a quiet spell shrinks it.
    await sleep(SETTLE_MS);
    const settled = await node.memory();
    const pushHist = new LatencyHistogram();
    set.pushedAt.forEach((at, k) => pushHist.record(at - set.sentAt[k]!));
    const polls = await samplePolls(set, node, Math.min(n, PUSH.polls));

    // Users [0, paced) are approved at a steady rate, each meeting an idle server; the rest all at once.
    await settle([node], 200);
    let cpu0 = cpuMs(node);
    const pacedHttp = await set.approve(node.httpPort, 0, paced, PUSH.rate, 8, key);
    const pacedCpu = cpuMs(node) - cpu0;
    await settle([node], 200);
    cpu0 = cpuMs(node);
    await set.approve(node.httpPort, paced, n, 0, PUSH.concurrency, key);
    const burstSeconds = (Math.max(...set.acceptedAt.subarray(paced)) - Math.min(...set.postedAt.subarray(paced))) / 1000;
    await settle([node], 200);
    const burstCpu = cpuMs(node) - cpu0;
    const end = procStatus(node.pid);
    set.close();

    const extraRss = held.rssKiB - base.rssKiB;
    const r = {
      machine: { pinned: pin, load },
      server: FROM_SRC ? 'bench/push-server.mjs running src/ via tsx (no dist/: run npm run build for the numbers to report)' : 'bench/push-server.mjs running dist/',
      users: n, sharedKeyPair: true, provisionMs,
      // After a forced full GC, except heldRssNoGcMiB (right after the requests arrived: what `top` showed then).
      memory: {
        baselineRssMiB: mib(base.rssKiB), heldRssMiB: mib(held.rssKiB), extraRssMiB: mib(extraRss), perHeldRssKiB: each(extraRss, n),
        baselineHeapMiB: mib(base.heapKiB), heldHeapMiB: mib(held.heapKiB), extraHeapMiB: mib(held.heapKiB - base.heapKiB), perHeldHeapKiB: each(held.heapKiB - base.heapKiB, n),
        heldRssNoGcMiB: mib(heldNoGc.rssKiB), endRssMiB: mib(end.rssKiB), peakRssMiB: mib(end.hwmKiB),
        baselineYoungMiB: mib(base.youngKiB), heldYoungMiB: mib(held.youngKiB), extraRssBeyondYoungMiB: mib(extraRss - (held.youngKiB - base.youngKiB)),
        settledRssMiB: mib(settled.rssKiB), settledExtraRssMiB: mib(settled.rssKiB - base.rssKiB), settledYoungMiB: mib(settled.youngKiB),
      },
      hold: { ...hold, serverCpuMsPerHeld: each(cpuHeld, n), requestToPush: pushHist.summary() },
      polls,
      floor,
      paced: { count: paced, ratePerSec: PUSH.rate, latency: set.latency(0, paced), httpLatency: pacedHttp.summary(), serverCpuMsPerApproval: each(pacedCpu, paced) },
      burst: {
        count: n - paced, concurrency: PUSH.concurrency, seconds: Math.round(burstSeconds * 1000) / 1000, approvalsPerSec: n > paced ? Math.round((n - paced) / burstSeconds) : 0,
        latency: set.latency(paced, n), serverCpuMsPerApproval: each(burstCpu, n - paced),
      },
      accepts: set.code.filter((c) => c === CODE.AccessAccept).length,
      rejects: set.code.filter((c) => c === CODE.AccessReject).length,
      failures: set.check(),
      targets: { rssMiB: 32, p99Ms: 5, rssMet: mib(extraRss) <= 32, settledRssMet: mib(settled.rssKiB - base.rssKiB) <= 32, p99Met: set.latency(0, paced).p99Ms <= 5 }, // issue 16: at most 32 MiB more RSS for 10,000 held
    };
    const m = r.memory;
    console.log([
      `${n} requests held at once, then approved over the Mobile App API (${r.server}${pin ? `; server on core ${SERVER_CPU}, bench on core ${GENERATOR_CPU}` : ''})`,
      `  server memory after a full GC: RSS ${m.baselineRssMiB} -> ${m.heldRssMiB} MiB with ${n} held: +${m.extraRssMiB} MiB (${m.perHeldRssKiB} KiB each; target <= ${r.targets.rssMiB} MiB: ${r.targets.rssMet ? 'met' : 'NOT MET'})`,
      `                 V8 heap + external ${m.baselineHeapMiB} -> ${m.heldHeapMiB} MiB: +${m.extraHeapMiB} MiB (${m.perHeldHeapKiB} KiB each)`,
      `                 V8's young generation committed ${m.baselineYoungMiB} -> ${m.heldYoungMiB} MiB (grown once by a burst whose objects survive, whatever its size); RSS growth beside it +${m.extraRssBeyondYoungMiB} MiB`,
      `                 still holding them, ${SETTLE_MS / 1000} s later (idle, then a full GC): RSS ${m.settledRssMiB} MiB, +${m.settledExtraRssMiB} MiB over the baseline (young generation ${m.settledYoungMiB} MiB; target: ${r.targets.settledRssMet ? 'met' : 'NOT MET'})`,
      `                 RSS before any forced GC right after the requests arrived ${m.heldRssNoGcMiB} MiB; at the end ${m.endRssMiB} MiB, peak ${m.peakRssMiB} MiB`,
      `  holding: ${n} held in ${hold.ms} ms, ${r.hold.serverCpuMsPerHeld} ms server CPU each (${hold.missingAtFirst} datagrams dropped by the socket buffer and re-sent); Access-Request -> push handed over: p50 ${r.hold.requestToPush.p50Ms} ms, p99 ${r.hold.requestToPush.p99Ms} ms`,
      `  GET /pending with ${n} held (${polls.count} devices): p50 ${polls.latency.p50Ms} ms, p99 ${polls.latency.p99Ms} ms, ${polls.serverCpuMsPerPoll} ms server CPU per poll`,
      `  approve-to-Accept, paced (${paced} at ${PUSH.rate}/s): ${l(r.paced.latency)} (target p99 <= ${r.targets.p99Ms} ms: ${r.targets.p99Met ? 'met' : 'NOT MET'})`,
      `    answer POST -> HTTP 200, same requests: ${l(r.paced.httpLatency)}; ${r.paced.serverCpuMsPerApproval} ms server CPU per approval`,
      ...(floor ? [`    floor, the same answers to a bare node:http server on the same core: ${l(floor)}`] : []),
      `  all at once (${r.burst.count} over ${PUSH.concurrency} connections): ${r.burst.approvalsPerSec} approvals/s (${r.burst.seconds} s), ${r.burst.serverCpuMsPerApproval} ms server CPU per approval; approve-to-Accept under that load ${l(r.burst.latency)}`,
      `  result: ${r.accepts}/${n} Access-Accept, ${r.rejects} Access-Reject${r.failures.length ? `; FAILURES: ${r.failures.slice(0, 5).join('; ')}` : '; every answer 200 approved'}`,
    ].join('\n'));
    return r;
  },
};

/** `count` devices poll GET /pending with everything held: latency per poll, and each must see its own request. */
async function samplePolls(set: Requests, node: Node, count: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const hist = new LatencyHistogram();
  const step = Math.max(1, Math.floor(set.names.length / Math.max(1, count)));
  const cpu0 = cpuMs(node);
  let wrong = 0;
  // Four in flight: each lane takes every fourth sampled device.
  await Promise.all(Array.from({ length: 4 }, async (_, lane) => {
    for (let j = lane; j < count; j += 4) {
      const k = (j * step) % set.names.length;
      const t = performance.now();
      const r = await call(agent, node.httpPort, '/api/v1/pending', tokenOf(set.names[k]!));
      hist.record(performance.now() - t);
      const items = r.status === 200 ? (JSON.parse(r.text) as { id: string }[]) : [];
      if (items.length !== 1 || items[0]!.id !== set.ids[k]) wrong++;
    }
  }));
  agent.destroy();
  if (wrong) throw new Error(`${wrong} devices did not see exactly their own request in /pending`);
  return { count, latency: hist.summary(), serverCpuMsPerPoll: each(cpuMs(node) - cpu0, count) };
}
