/**
 * Two nodes sharing PostgreSQL and Redis (issue 13), pushes across them:
 *
 * - Cross-node approve -> Access-Accept: the Access-Request is held at node A, the phone's answer
 *   goes to node B's Mobile App API; timed from just before the answer POST is written to the
 *   Access-Accept (Response Authenticator verified) arriving from A. Paced (`--rate`/s): latency, not
 *   queueing. Beside it: the answer's own HTTP 200 from B, and the same held and answered at A.
 * - `--held` (10,000) requests held at once, half at each node: RSS per node (after a full GC, asked
 *   for over IPC) and Redis used_memory (INFO memory), each against its reading before.
 *
 * Private engines: bench/redis.ts and bench/postgres.ts, or BENCH_REDIS_URL / BENCH_PG_URL (an empty
 * database) to use others. Nodes: `radius-mfa serve` as servers.ts runs it (dist/ when built, else
 * src/ via tsx; BENCH_OURS_FROM_SRC=1 forces src/), with --expose-gc and an IPC channel, first_factor
 * none, default_method push, no push service (the bench learns request ids from GET /pending, as a
 * polling phone does), log level warn. N users with one device each, one P-256 key pair shared by all
 * devices. BENCH_HA_KEEP_DIR=1 keeps the temp dir.
 *
 *   node --import tsx bench/ha-push.ts [--held 10000] [--paced 1000] [--rate 200] [--json]
 *   npm run bench -- --only ha-push
 * Prints a summary; with --json the result as the last line. Bounded: stops itself after 240 s.
 */
import { createHash, generateKeyPairSync, randomBytes, randomFillSync, sign as ecdsaSign } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { configSchema } from '../src/config/schema.js';
import { hmacMd5Key } from '../src/radius/md5.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { packetLength, verifyResponseAuthenticator, writeAccessRequest } from './packet.js';
import { freeTcpPort, freeUdpPort } from './ports.js';
import { startPostgres } from './postgres.js';
import { procCpuSeconds, procStatus } from './proc.js';
import { startRedis } from './redis.js';
import { CLI, FROM_SRC, launch, type RunningServer } from './servers.js';
import { SECRET, type Stoppable } from './stage.js';

const PER_SOCKET = 250;
const SECRET_BYTES = Buffer.from(SECRET);
const HARD_LIMIT_MS = 240_000;
/** Engines and nodes this run started, stopped (engines: and their dirs removed) when it ends. */
const started: Stoppable[] = [];
let tempDir: string | undefined;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;
const user = (set: string, i: number) => `${set}${String(i).padStart(5, '0')}`;
const tokenOf = (name: string) => createHash('sha256').update(`bench-ha-token:${name}`).digest('base64url');

async function engineRedis(): Promise<string> {
  if (process.env.BENCH_REDIS_URL) return process.env.BENCH_REDIS_URL;
  const redis = await startRedis();
  started.push({ stop: () => redis.close() });
  return redis.url;
}

async function enginePostgres(): Promise<string> {
  if (process.env.BENCH_PG_URL) return process.env.BENCH_PG_URL;
  const postgres = await startPostgres();
  started.push({ stop: () => postgres.close() });
  return postgres.createDatabase('radius_mfa_bench');
}

/**
 * Loaded into each node (--import): on the IPC message 'gc', two full GCs (weak callbacks of the first
 * free more), then 'gc' back; the node's RSS is then read from /proc.
 */
const GC_ON_IPC = `data:text/javascript,process.on('message',(m)=>{if(m==='gc'){gc();gc();process.send('gc')}})`;

type Node = RunningServer & { authPort: number; httpPort: number; metricsPort: number };

async function startNode(name: string, dir: string, pgUrl: string, redisUrl: string, key: string): Promise<Node> {
  const [authPort, httpPort, metricsPort] = [await freeUdpPort(), await freeTcpPort(), await freeTcpPort()];
  const config = join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    `listen: { auth: "127.0.0.1:${authPort}" }
clients: [{ name: bench, address: 127.0.0.1, secret: "${SECRET}" }]
first_factor: { type: none }
mfa: { default_method: push, reject_delay: 0, lockout: { max_failures: 0 }, push: { timeout: 10m, rate_limit: { max: 1000, window: 10m } } }
store: { type: postgres, url: "${pgUrl}", pool: 10, encryption_key: "${key}" }
state: { type: redis, url: "${redisUrl}", prefix: "bench-ha:", timeout: 2s }
http: { listen: "127.0.0.1:${httpPort}" }
portal: { enabled: false }
metrics: { listen: "127.0.0.1:${metricsPort}" }
rate_limits: { client_per_second: 0, source_per_minute: 0 }
log: { level: warn }
`,
  );
  // Ready once /readyz says both engines answer (RADIUS and HTTP listen by then).
  const ready = async () => {
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(50)) {
      if ((await get(metricsPort, '/readyz').catch(() => undefined))?.status === 200) return true;
    }
    return false;
  };
  const server = await launch(`node ${name}`, undefined, process.execPath, ['--expose-gc', `--import=${GC_ON_IPC}`, ...CLI, '--config', config, 'serve'], authPort, SECRET, dir, join(dir, `${name}.log`), { ipc: true, ready });
  started.push(server);
  return { ...server, authPort, httpPort, metricsPort };
}

const agent = new Agent({ keepAlive: true, maxSockets: 32 });

function call(port: number, method: string, path: string, token?: string, body?: unknown, onWritten?: () => void): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) };
    const req = httpRequest({ agent, host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    onWritten?.();
    req.end(payload);
  });
}
const get = (port: number, path: string, token?: string) => call(port, 'GET', path, token);

/** Held requests of a set of users at one node; their Access-Accept times by user. */
class Requests {
  readonly sockets: Socket[] = [];
  readonly packets: Buffer[];
  readonly acceptedAt: Float64Array;
  accepted = 0;
  other = 0;

  private constructor(readonly names: string[], readonly port: number) {
    const secret = Buffer.from(SECRET);
    const maKey = hmacMd5Key(secret);
    this.packets = names.map((name, k) => {
      const buf = Buffer.alloc(4096);
      randomFillSync(buf, 4, 16);
      const len = writeAccessRequest(buf, k % PER_SOCKET, Buffer.from(name), Buffer.from('x'), Buffer.alloc(0), Buffer.from('bench-vpn'), secret, maKey, Buffer.from(`198.51.100.${k % 250}`));
      return buf.subarray(0, len);
    });
    this.acceptedAt = new Float64Array(names.length);
  }

  static async open(names: string[], port: number): Promise<Requests> {
    const r = new Requests(names, port);
    for (let s = 0; s < Math.ceil(names.length / PER_SOCKET); s++) {
      const socket = createSocket('udp4');
      await new Promise<void>((ok) => socket.bind(0, '127.0.0.1', ok));
      socket.setRecvBufferSize(4 * 1024 * 1024);
      socket.on('message', (msg) => r.onReply(s * PER_SOCKET + msg[1]!, msg, performance.now()));
      r.sockets.push(socket);
    }
    return r;
  }

  private onReply(k: number, msg: Buffer, at: number): void {
    const request = this.packets[k];
    const len = packetLength(msg);
    if (!request || this.acceptedAt[k] || len < 0 || !verifyResponseAuthenticator(msg, len, request, 4, SECRET_BYTES)) return;
    if (msg[0] !== 2) return void this.other++;
    this.acceptedAt[k] = at;
    this.accepted++;
  }

  /** Sends every request, 100 at a time, until `held()` says the node holds them all (datagrams may drop). */
  async holdAll(held: () => Promise<number>, base: number): Promise<void> {
    for (let round = 0; round < 5; round++) {
      for (let k = 0; k < this.packets.length; k++) {
        this.sockets[Math.floor(k / PER_SOCKET)]!.send(this.packets[k]!, this.port, '127.0.0.1');
        // 500/s: a burst beyond what the store's pool serves within its wait would be refused (store_unavailable).
        if (k % 50 === 49) await sleep(100);
      }
      const until = Date.now() + 20_000;
      while (Date.now() < until && (await held()) - base < this.packets.length) await sleep(100);
      if ((await held()) - base >= this.packets.length) return;
    }
    throw new Error(`only ${(await held()) - base}/${this.packets.length} requests held at port ${this.port}`);
  }

  close = () => this.sockets.forEach((s) => s.close());
}

/** radius_pushes_pending of a node: with state redis, the pushes it holds requests for. */
const held = async (node: Node) => Number(/^radius_pushes_pending (\d+)$/m.exec((await get(node.metricsPort, '/metrics')).body)?.[1] ?? NaN);

/** The request id each user's phone sees (GET /pending through `via`). */
async function idsOf(names: string[], via: Node): Promise<string[]> {
  const ids: string[] = [];
  for (const name of names) {
    const r = await get(via.httpPort, '/api/v1/pending', tokenOf(name));
    const id = (JSON.parse(r.body) as { id: string }[])[0]?.id;
    if (!id) throw new Error(`${name}: no pending request listed by ${via.name} (${r.status} ${r.body.slice(0, 200)})`);
    ids.push(id);
  }
  return ids;
}

/** approve -> Access-Accept, and approve -> the answer's HTTP 200 at the phone (the API node's share). */
type Paced = { accept: LatencySummary; http: LatencySummary };

/** Approves each held request through `via`, one every 1/rate s; the latency from the POST to its Accept. */
async function approvePaced(reqs: Requests, ids: string[], via: Node, rate: number, privateKey: ReturnType<typeof generateKeyPairSync>['privateKey']): Promise<Paced> {
  const postedAt = new Float64Array(ids.length);
  const http = new LatencyHistogram();
  const signatures = ids.map((id) => ecdsaSign('sha256', Buffer.from(`${id}.approve`), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64'));
  const start = performance.now();
  const answers: Promise<unknown>[] = [];
  for (let k = 0; k < ids.length; k++) {
    const due = start + (k * 1000) / rate;
    while (performance.now() < due) await sleep(Math.max(0, due - performance.now() - 1));
    const answer = call(via.httpPort, 'POST', `/api/v1/requests/${ids[k]}/answer`, tokenOf(reqs.names[k]!), { decision: 'approve', signature: signatures[k] }, () => (postedAt[k] = performance.now()));
    answers.push(answer.then(() => http.record(performance.now() - postedAt[k]!)));
  }
  await Promise.all(answers);
  const deadline = Date.now() + 10_000;
  while (reqs.accepted + reqs.other < ids.length && Date.now() < deadline) await sleep(20);
  if (reqs.accepted !== ids.length) throw new Error(`${reqs.accepted}/${ids.length} Access-Accept (${reqs.other} other replies)`);
  const hist = new LatencyHistogram();
  reqs.acceptedAt.forEach((at, k) => hist.record(at - postedAt[k]!));
  return { accept: hist.summary(), http: http.summary() };
}

/** RSS of a node after a full GC (asked for over IPC). */
async function memory(node: Node): Promise<number> {
  await new Promise<void>((resolve) => {
    node.child.once('message', () => resolve());
    node.child.send('gc');
  });
  return procStatus(node.pid).rssKiB * 1024;
}

/** Waits until the nodes have used no CPU for 300 ms (at most 10 s): each phase starts on idle servers. */
async function quiet(nodes: Node[]): Promise<void> {
  const cpu = () => nodes.reduce((sum, n) => sum + (procCpuSeconds(n.pid) ?? 0), 0);
  const deadline = Date.now() + 10_000;
  for (let last = cpu(), since = Date.now(); Date.now() < deadline && Date.now() - since < 300; ) {
    await sleep(50);
    if (cpu() !== last) [last, since] = [cpu(), Date.now()];
  }
}

const redisUsed = async (redis: Redis) => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);

export type HaPushResult = {
  machine: { cpu: string; cores: number; node: string; loadavg: number[] };
  server: string;
  crossNode: Paced;
  sameNode: Paced;
  held: { count: number; perNode: { node: string; baseMiB: number; heldMiB: number; perHeldKiB: number }[]; redisBaseMiB: number; redisHeldMiB: number; redisPerHeldBytes: number };
  targets: { crossNodeP99Ms: number; met: boolean };
};

/** The whole bench; what it started (engines, nodes, temp dir) is stopped and removed when it ends. */
export const runHaPushBench = (o: { held: number; paced: number; rate: number }): Promise<HaPushResult> => measure(o).finally(cleanUp);

async function measure(o: { held: number; paced: number; rate: number }): Promise<HaPushResult> {
  const log = (s: string) => process.stderr.write(`ha-push bench: ${s}\n`);
  const dir = (tempDir = mkdtempSync(join(tmpdir(), 'bench-ha-push-')));
  const [redisUrl, pgUrl] = [await engineRedis(), await enginePostgres()];
  const key = randomBytes(32).toString('hex');
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const names = { warm: Array.from({ length: 200 }, (_, i) => user('w', i)), cross: Array.from({ length: o.paced }, (_, i) => user('c', i)), local: Array.from({ length: o.paced }, (_, i) => user('l', i)), held: Array.from({ length: o.held }, (_, i) => user('h', i)) };
  let t = performance.now();
  const store = await openPostgresStore(configSchema.shape.store.parse({ type: 'postgres', url: pgUrl, encryption_key: key }), Buffer.from(key, 'hex'));
  try {
    const all = Object.values(names).flat();
    await store.addUsers(all.map((username) => ({ username })));
    const der = publicKey.export({ type: 'spki', format: 'der' });
    for (let i = 0; i < all.length; i += 200) {
      await Promise.all(all.slice(i, i + 200).map((name) => store.devices.add({ id: `dev-${name}`, username: name, name: `phone ${name}`, publicKey: der, tokenHash: createHash('sha256').update(tokenOf(name), 'utf8').digest(), pushToken: null })));
    }
  } finally {
    await store.close();
  }
  // Statistics for the planner now, not an autovacuum in the middle of a timed phase.
  const admin = new pg.Client({ connectionString: pgUrl });
  await admin.connect();
  await admin.query('VACUUM ANALYZE');
  await admin.end();
  log(`${Object.values(names).flat().length} users with a device each in ${Math.round(performance.now() - t)} ms; starting two nodes (${FROM_SRC ? 'src/ via tsx' : 'dist/'})`);
  const [a, b] = [await startNode('a', dir, pgUrl, redisUrl, key), await startNode('b', dir, pgUrl, redisUrl, key)];
  const redis = new Redis(redisUrl);
  try {
    // Warm-up: every code path of the measurement, on both nodes, compiled before anything is timed.
    for (const [at, via] of [[a, b], [b, a], [a, a]] as const) {
      const warm = await Requests.open(names.warm, at.authPort);
      await warm.holdAll(() => held(at), await held(at));
      await approvePaced(warm, await idsOf(names.warm, via), via, 1000, privateKey);
      warm.close();
    }
    const runs: Record<'cross' | 'local', Paced> = {} as never;
    for (const [which, via] of [['cross', b], ['local', a]] as const) {
      const reqs = await Requests.open(names[which], a.authPort);
      await reqs.holdAll(() => held(a), await held(a));
      const ids = await idsOf(names[which], via);
      await quiet([a, b]);
      runs[which] = await approvePaced(reqs, ids, via, o.rate, privateKey);
      reqs.close();
      log(`held at A, approved at ${which === 'cross' ? 'B' : 'A'}: approve -> Access-Accept p50 ${runs[which].accept.p50Ms} ms, p99 ${runs[which].accept.p99Ms} ms`);
    }

    await quiet([a, b]);
    const base = { a: await memory(a), b: await memory(b), redis: await redisUsed(redis), heldA: await held(a), heldB: await held(b) };
    t = performance.now();
    const atA = await Requests.open(names.held.filter((_, i) => i % 2 === 0), a.authPort);
    const atB = await Requests.open(names.held.filter((_, i) => i % 2 === 1), b.authPort);
    await Promise.all([atA.holdAll(() => held(a), base.heldA), atB.holdAll(() => held(b), base.heldB)]);
    log(`${o.held} requests held (half at each node) in ${Math.round(performance.now() - t)} ms`);
    const after = { a: await memory(a), b: await memory(b), redis: await redisUsed(redis) };
    if (atA.accepted + atB.accepted + atA.other + atB.other > 0) throw new Error(`${atA.accepted + atB.accepted + atA.other + atB.other} held requests were answered before any approval (see ${dir})`);
    atA.close();
    atB.close();
    const perNode = [['A', base.a, after.a, atA.names.length], ['B', base.b, after.b, atB.names.length]] as const;
    return {
      machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, loadavg: loadavg().map((x) => Math.round(x * 100) / 100) },
      server: FROM_SRC ? 'radius-mfa serve from src/ via tsx (build dist/ for the numbers to report)' : 'radius-mfa serve from dist/',
      crossNode: runs.cross,
      sameNode: runs.local,
      held: {
        count: o.held,
        perNode: perNode.map(([node, b0, b1, n]) => ({ node, baseMiB: mib(b0), heldMiB: mib(b1), perHeldKiB: Math.round(((b1 - b0) / 1024 / n) * 100) / 100 })),
        redisBaseMiB: mib(base.redis),
        redisHeldMiB: mib(after.redis),
        redisPerHeldBytes: Math.round((after.redis - base.redis) / o.held),
      },
      targets: { crossNodeP99Ms: 10, met: runs.cross.accept.p99Ms <= 10 },
    };
  } finally {
    redis.disconnect();
  }
}

export function formatHaPushResult(r: HaPushResult): string {
  const l = (s: LatencySummary) => `p50 ${s.p50Ms} ms, p90 ${s.p90Ms} ms, p99 ${s.p99Ms} ms, max ${s.maxMs} ms (${s.count})`;
  return [
    `Two nodes, PostgreSQL + Redis (${r.server}; ${r.machine.cores} cores, load average ${r.machine.loadavg.join(' ')}; engines on this machine)`,
    `  approve -> Access-Accept, held at A, answered at B: ${l(r.crossNode.accept)} (target p99 <= ${r.targets.crossNodeP99Ms} ms: ${r.targets.met ? 'met' : 'NOT MET'})`,
    `    the answer's own HTTP 200 from B, same answers: ${l(r.crossNode.http)}`,
    `  approve -> Access-Accept, held at A, answered at A: ${l(r.sameNode.accept)}`,
    `  ${r.held.count} held pushes, half at each node (RSS after a full GC):`,
    ...r.held.perNode.map((n) => `    node ${n.node}: ${n.baseMiB} -> ${n.heldMiB} MiB (${n.perHeldKiB} KiB per held request)`),
    `    Redis used_memory: ${r.held.redisBaseMiB} -> ${r.held.redisHeldMiB} MiB (${r.held.redisPerHeldBytes} bytes per push)`,
  ].join('\n');
}

async function cleanUp(): Promise<void> {
  // Nodes first (they hold connections to the engines), then the engines.
  await Promise.all(started.splice(0).reverse().map((s) => s.stop().catch(() => {})));
  agent.destroy();
  if (tempDir && !process.env.BENCH_HA_KEEP_DIR) rmSync(tempDir, { recursive: true, force: true });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values: v } = parseArgs({ options: { held: { type: 'string', default: '10000' }, paced: { type: 'string', default: '1000' }, rate: { type: 'string', default: '200' }, json: { type: 'boolean', default: false } } });
  const num = (name: 'held' | 'paced' | 'rate') => {
    const n = Number(v[name]);
    if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new Error(`--${name} must be a whole number in 1..100000`);
    return n;
  };
  const stop = async (code: number, why?: string) => {
    if (why) console.error(`ha-push bench: ${why}`);
    await cleanUp();
    process.exit(code);
  };
  setTimeout(() => void stop(3, `hard limit of ${HARD_LIMIT_MS / 1000} s reached; stopping`), HARD_LIMIT_MS).unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stop(130));
  try {
    const r = await runHaPushBench({ held: num('held'), paced: num('paced'), rate: num('rate') });
    console.log(formatHaPushResult(r));
    if (v.json) console.log(JSON.stringify(r));
    await stop(0);
  } catch (err) {
    await stop(1, err instanceof Error ? (err.stack ?? err.message) : String(err));
  }
}
