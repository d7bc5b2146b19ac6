// The push bench's server side: provisioning, the server child, memory and CPU readings, the floor.
import { type ChildProcess } from 'node:child_process';
import { createHash, type generateKeyPairSync } from 'node:crypto';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { resolveEncryptionKey } from '../src/store/secret-box.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { freeTcpPort } from './ports.js';
import { procStatus } from './proc.js';
import { FROM_SRC, REPO, launch, spawnOnCore, type RunningServer } from './servers.js';
import { SECRET, SERVER_CPU } from './stage.js';
import { WARMUP_RATE, WARMUP_USERS, running, userName, tokenOf, pushTokenOf } from './push-common.js';
import { RequestSet, samplePolls, signAll, holdAll } from './push-requests.js';

/** N users + one device each (and the warm-up users), through the store API; one P-256 public key for all. */
export async function provision(dir: string, indexes: number[], publicKeyDer: Buffer): Promise<void> {
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

/** A full cycle for the warm-up users: every code path the measurement uses runs (and is compiled) first. */
export async function warmUp(server: Server, port: number, httpPort: number, pid: number, privateKey: ReturnType<typeof generateKeyPairSync>['privateKey'], approver: ChildProcess): Promise<void> {
  const indexes = Array.from({ length: WARMUP_USERS }, (_, i) => -i - 1);
  const set = await RequestSet.openOn(approver, indexes, port, httpPort);
  server.route(set);
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  try {
    await holdAll(set, pid);
    await samplePolls(set, agent, httpPort, WARMUP_USERS, pid);
    const failures: string[] = [];
    await set.approve({ from: 0, to: indexes.length, rate: WARMUP_RATE, connections: 8, signatures: signAll(set.ids, privateKey) }, new Float64Array(indexes.length), new LatencyHistogram(), failures);
    if (set.received !== indexes.length) failures.push(`${set.received}/${indexes.length} replies`);
    if (failures.length) throw new Error(`warm-up: ${failures.slice(0, 3).join('; ')}`);
  } finally {
    agent.destroy();
  }
}

/** The floor's server: node:http answering every POST as the answer endpoint does, nothing else. */
export const FLOOR_SERVER = `
const server = require('node:http').createServer((req, res) => {
  req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end('{"status":"approved"}'));
});
server.listen(Number(process.argv[1]), '127.0.0.1', () => process.send('up'));
process.once('disconnect', () => process.exit(0));`;

/**
 * What this machine adds by itself: the paced phase's approvals (same approver, rate, count, cores)
 * against a bare node:http server that does nothing but answer. Its tail is the floor for ours.
 */
export async function measureFloor(approver: ChildProcess, indexes: number[], rate: number, pin: boolean): Promise<LatencySummary> {
  const port = await freeTcpPort();
  const floorServer = spawnOnCore(pin ? SERVER_CPU : undefined, process.execPath, ['-e', FLOOR_SERVER, String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    await new Promise((resolve, reject) => floorServer.once('message', resolve).once('exit', (code: number) => reject(new Error(`floor server exited ${code}`))));
    const set = await RequestSet.openOn(approver, indexes, 0, port);
    const hist = new LatencyHistogram();
    const failures: string[] = [];
    const ids = indexes.map((_, k) => `floor-${k}`);
    await set.approve({ from: 0, to: indexes.length, rate, connections: 8, signatures: ids.map(() => 'x'), ids }, new Float64Array(indexes.length), hist, failures);
    if (failures.length) throw new Error(`floor: ${failures.slice(0, 3).join('; ')}`);
    return hist.summary();
  } finally {
    floorServer.kill();
  }
}

export type MemoryUsage = NodeJS.MemoryUsage;

export type Server = RunningServer & {
  /** Pushes (IPC) for these sets' users go to them from now on. */
  route: (...sets: RequestSet[]) => void;
  /** Full GC in the server, then its memory: VmRSS from /proc (what the OS charges) and V8's heap. */
  memory: () => Promise<{ rssKiB: number; usage: MemoryUsage }>;
  /** With BENCH_PUSH_PACED_PROFILE=FILE.cpuprofile: the server's CPU profile between start and stop (bench/profile-summary.ts reads it). */
  profile: (what: 'start' | 'stop') => Promise<void>;
};

/** bench/push-server.mjs, ready when it says 'up' over IPC (after app.start(): RADIUS and HTTP both listen). */
export async function startServer(cfg: string, dir: string, authPort: number, pin: boolean): Promise<Server> {
  const extra = (process.env.BENCH_PUSH_NODE_ARGS ?? '').split(' ').filter(Boolean); // e.g. --trace-gc
  const args = ['--expose-gc', ...extra, ...(FROM_SRC ? ['--import', 'tsx'] : []), join(REPO, 'bench', 'push-server.mjs'), cfg];
  const srv = await launch('push server', pin ? SERVER_CPU : undefined, process.execPath, args, authPort, SECRET, dir, join(dir, 'serve.log'), {
    ipc: true, env: { ...process.env, BENCH_PUSH_FROM_SRC: FROM_SRC ? '1' : '0' }, ready: (c) => new Promise((r) => c.once('message', (m) => r(m === 'up'))),
  });
  const child = srv.child;
  running.child = child;
  let route = new Map<string, { set: RequestSet; k: number }>();
  let answer: ((body: unknown) => void) | undefined;
  child.on('message', ([kind, a, b]: [string, unknown, string]) => {
    if (kind !== 'push') return answer?.(a);
    const to = route.get(a as string);
    if (to) to.set.onPush(to.k, b);
  });
  const ask = (msg: unknown[]) => new Promise<unknown>((resolve) => {
    answer = resolve;
    child.send(msg);
  });
  const profileFile = process.env.BENCH_PUSH_PACED_PROFILE;
  return {
    ...srv,
    route: (...sets) => {
      route = new Map(sets.flatMap((set) => set.indexes.map((i, k) => [pushTokenOf(userName(i)), { set, k }] as const)));
    },
    memory: async () => {
      const usage = (await ask(['memory'])) as MemoryUsage;
      return { rssKiB: procStatus(child.pid!).rssKiB, usage };
    },
    profile: async (what) => {
      if (profileFile) await ask(['profile', what === 'start' ? 'start' : profileFile]);
    },
  };
}
