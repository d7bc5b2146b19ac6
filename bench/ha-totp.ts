/**
 * The TOTP path (PAP + code, first_factor none, no audit lines: run.ts's `ours-none`) on one node with
 * the shared engines, store postgres + state redis, beside the one-box default, store sqlite + state
 * memory, in the same run: same build, users, load and cores (issue 13: goal >= 0.7x of sqlite/memory).
 * Each request reads the user from the store and claims its (user, step) in the state, so both engines
 * are on the path of every request.
 *
 * PostgreSQL and Redis are private instances on free loopback ports (bench/postgres.ts, bench/redis.ts),
 * not pinned: as on one box, they share the machine with the server (core 0) and the generator
 * (bench/load.ts, core 1), and their CPU is not in the server's "srv CPU%". The
 * postgres node gets its users as an admin who outgrows one box would: `user import` into SQLite, then
 * `store copy --to postgres://...`, and the same key file.
 *
 *   npm run build && node --import tsx bench/ha-totp.ts [--seconds 10 --warmup 2 --concurrency 64
 *     --users 10000 --rounds 2 --json]
 *
 * --json: the result as one JSON line at the end. bench/run.ts can call runHaTotpBench() and
 * formatHaTotp() in its own process: everything measured runs in child processes.
 * Bounded: everything stops at 150 s.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { LoadResult } from './load-generator.js';
import { OURS_CLI, REPO, oursBuilt, provisionOurs } from './ours.js';
import { freeUdpPort } from './ports.js';
import { startPostgres, type PostgresInstance } from './postgres.js';
import { backgroundBusy } from './proc.js';
import { canPin, spawnOnCore } from './processes.js';
import { probeAccess, waitForServer } from './probe.js';
import { startRedis, type RedisInstance } from './redis.js';
import { makeUsers, totpCode, totpStep, type BenchUser } from './users.js';

const HARD_LIMIT_MS = 150_000;
const SERVER_CPU = 0;
const GENERATOR_CPU = 1;
const SECRET = 'bench-secret-0123456789';
/** Issue 13's goal for the shared engines, as a share of sqlite/memory answered/s. */
const GOAL = 0.7;

type Variant = 'sqlite/memory' | 'postgres/redis';

export interface HaTotpRun {
  variant: Variant;
  round: number;
  concurrency: number;
  answeredPerSec: number;
  p50Ms: number;
  p99Ms: number;
  accept: number;
  reject: number;
  timeouts: number;
  serverCpuPercent: number | undefined;
  answeredPerServerCpuSecond: number | undefined;
  core0BusyPercent: number | undefined;
}

export interface HaTotpResult {
  startedAt: string;
  users: number;
  seconds: number;
  loadavgAtStart: number[];
  backgroundBusyPercent: number[];
  runs: HaTotpRun[];
  /** postgres/redis over sqlite/memory, best run of each per concurrency. */
  ratios: { concurrency: number; answeredPerSec: number; p99: number; perServerCpuSecond: number }[];
  /** What the postgres/redis node does per request: a right code, the same code again, a wrong one. */
  sanity: { right: number | null; replay: number | null; wrong: number | null };
}

export interface HaTotpOptions {
  seconds: number;
  warmup: number;
  concurrency: number[];
  users: number;
  rounds: number;
  json: boolean;
}

function parseOptions(argv: string[]): HaTotpOptions {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      concurrency: { type: 'string', default: '64' },
      users: { type: 'string', default: '10000' },
      rounds: { type: 'string', default: '2' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const bounded = (name: string, x: number, lo: number, hi: number) => {
    if (!Number.isFinite(x) || x < lo || x > hi) throw new Error(`--${name} must be in ${lo}..${hi}`);
    return x;
  };
  return {
    seconds: bounded('seconds', Number(v.seconds), 1, 30),
    warmup: bounded('warmup', Number(v.warmup), 0, 10),
    concurrency: v.concurrency.split(',').map((c) => bounded('concurrency', Number(c), 1, 1024)),
    users: bounded('users', Number(v.users), 2, 100_000),
    rounds: bounded('rounds', Number(v.rounds), 1, 4),
    json: v.json,
  };
}

interface Node {
  variant: Variant;
  port: number;
  pid: number;
  dir: string;
  child: ChildProcess;
}

/** Everything started, for the cleanup (also on the hard limit and on SIGINT). */
const running = { nodes: [] as Node[], generator: undefined as ChildProcess | undefined, engines: [] as (PostgresInstance | RedisInstance)[] };

async function cleanup(): Promise<void> {
  running.generator?.kill('SIGKILL');
  for (const n of running.nodes) if (n.child.exitCode === null) n.child.kill('SIGTERM');
  await Promise.all(running.nodes.map((n) => (n.child.exitCode === null ? new Promise((r) => n.child.once('exit', r)) : undefined)));
  for (const n of running.nodes) rmSync(n.dir, { recursive: true, force: true });
  running.nodes = [];
  await Promise.all(running.engines.map((e) => e.close()));
  running.engines = [];
}

function cli(cfg: string, args: string[]): void {
  const r = spawnSync(process.execPath, [OURS_CLI, '--config', cfg, ...args], { encoding: 'utf8', cwd: REPO, maxBuffer: 16 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`radius-mfa ${args.join(' ')} failed (${r.status}):\n${r.stdout}${r.stderr}`.slice(0, 4000));
}

/**
 * The bench config (bench/config.ts) with its SQLite store replaced by PostgreSQL and Redis, keeping the
 * key file the SQLite store was sealed with (what docs/ha.md tells an admin to do).
 */
function sharedEnginesConfig(cfg: string, dir: string, pgUrl: string, redisUrl: string): void {
  const text = readFileSync(cfg, 'utf8');
  const store = /^store:\n {2}path: .*\n/m;
  if (!store.test(text)) throw new Error(`bench/config.ts no longer writes "store:\\n  path: ..." in ${cfg}: update bench/ha-totp.ts`);
  const shared = `store:
  type: postgres
  url: ${JSON.stringify(pgUrl)}
  pool: 10
  key_file: ${JSON.stringify(join(dir, 'bench.db.key'))}
state:
  type: redis
  url: ${JSON.stringify(redisUrl)}
`;
  writeFileSync(cfg, text.replace(store, shared));
}

/**
 * The per-client rate limit (rate_limits.client_per_second, default 1000) is lifted on both nodes: the
 * generator is one client, and dropped requests would count as timeouts and cap both at the same rate.
 */
function unlimited(cfg: string): void {
  const text = readFileSync(cfg, 'utf8');
  if (/^rate_limits:/m.test(text)) throw new Error(`bench/config.ts now writes rate_limits in ${cfg}: update bench/ha-totp.ts`);
  writeFileSync(cfg, `${text}rate_limits:\n  client_per_second: 0\n`);
}

/** Starts `serve` on `cfg` pinned to the server core; resolves once it answers an Access-Request. */
async function startNode(variant: Variant, cfg: string, dir: string, port: number, user: BenchUser): Promise<Node> {
  const log = join(dir, 'serve.log');
  const fd = openSync(log, 'w');
  const child = spawnOnCore(canPin() ? SERVER_CPU : undefined, process.execPath, [OURS_CLI, '--config', cfg, 'serve'], { stdio: ['ignore', fd, fd], cwd: REPO });
  closeSync(fd);
  const node: Node = { variant, port, pid: child.pid!, dir, child };
  running.nodes.push(node);
  const exited = new Promise((r) => child.once('exit', r));
  const password = () => user.password + totpCode(user.key, totpStep(Date.now()));
  if (!(await waitForServer({ port, secret: SECRET, userName: user.name, password, timeoutMs: 30_000, exited }))) {
    throw new Error(`${variant} node did not answer on 127.0.0.1:${port} (exit ${child.exitCode}):\n${readFileSync(log, 'utf8').slice(-3000)}`);
  }
  return node;
}

/** bench/load.ts as a child on the generator core; its JSON result. */
function runGenerator(node: Node, o: HaTotpOptions, concurrency: number): Promise<LoadResult> {
  const flags = { port: node.port, secret: SECRET, users: o.users, seconds: o.seconds, warmup: o.warmup, concurrency, 'server-pid': node.pid };
  const args = ['--import', 'tsx', join(REPO, 'bench', 'load.ts'), ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, String(v)]), '--json'];
  const child = spawnOnCore(canPin() ? GENERATOR_CPU : undefined, process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  running.generator = child;
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      running.generator = undefined;
      if (code !== 0) return reject(new Error(`load generator exited ${code}: ${err.slice(-2000)}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as LoadResult);
      } catch {
        reject(new Error(`load generator output is not JSON: ${out.slice(-500)}`));
      }
    });
  });
}

/** The postgres/redis node answers like the one-box one: accept, replay reject, wrong-code reject. */
async function sanity(node: Node, users: BenchUser[]): Promise<HaTotpResult['sanity']> {
  const [u, w] = [users[1]!, users[2]!];
  const code = totpCode(u.key, totpStep(Date.now()));
  const ask = (user: BenchUser, c: string) => probeAccess({ port: node.port, secret: SECRET, userName: user.name, password: user.password + c, timeoutMs: 3000 });
  const wrong = String((Number(totpCode(w.key, totpStep(Date.now()))) + 1) % 1_000_000).padStart(6, '0');
  return { right: await ask(u, code), replay: await ask(u, code), wrong: await ask(w, wrong) };
}

export async function runHaTotpBench(o: HaTotpOptions, say: (line: string) => void = console.log): Promise<HaTotpResult> {
  if (!oursBuilt()) throw new Error(`${OURS_CLI} not found: run npm run build`);
  const startedAt = new Date().toISOString();
  const background = await backgroundBusy(1000);
  say(`ha-totp: load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; background busy per core ${background.map((b, i) => `cpu${i} ${b}%`).join('  ')}`);
  if (background.some((b) => b > 15)) say('ha-totp: WARNING other processes are busy on this machine: absolute numbers are low and noisy; the ratio of two runs made alternately is the figure to read');
  const users = makeUsers(o.users);
  const node = { secret: SECRET, users, firstFactor: 'none', logLevel: 'warn' } as const;

  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  running.engines.push(pg, redis);
  const pgUrl = await pg.createDatabase('radius_mfa_bench');

  const oneBoxDir = mkdtempSync(join(tmpdir(), 'bench-ha-sqlite-'));
  const [oneBoxPort, sharedPort] = [await freeUdpPort(), await freeUdpPort()];
  const oneBox = await provisionOurs(oneBoxDir, { ...node, port: oneBoxPort });
  const sharedDir = mkdtempSync(join(tmpdir(), 'bench-ha-pg-'));
  const shared = await provisionOurs(sharedDir, { ...node, port: sharedPort });
  const copyStarted = performance.now();
  cli(shared.cfg, ['store', 'copy', '--to', pgUrl]);
  say(`ha-totp: ${o.users} users imported into SQLite in ${shared.importMs} ms, copied to PostgreSQL in ${Math.round(performance.now() - copyStarted)} ms`);
  sharedEnginesConfig(shared.cfg, sharedDir, pgUrl, redis.url);
  for (const cfg of [oneBox.cfg, shared.cfg]) unlimited(cfg);

  const nodes = [
    await startNode('sqlite/memory', oneBox.cfg, oneBoxDir, oneBoxPort, users[0]!),
    await startNode('postgres/redis', shared.cfg, sharedDir, sharedPort, users[0]!),
  ];
  const check = await sanity(nodes[1]!, users);
  say(`ha-totp: postgres/redis node: right code ${check.right}, same code again ${check.replay}, wrong code ${check.wrong} (2 = Accept, 3 = Reject)`);

  const runs: HaTotpRun[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    for (const [ci, c] of o.concurrency.entries()) {
      // Alternate which goes first, so that neither always follows a quiet spell.
      for (const n of (round + ci) % 2 === 1 ? nodes : [...nodes].reverse()) {
        const r = await runGenerator(n, o, c);
        const run: HaTotpRun = {
          variant: n.variant, round, concurrency: c, answeredPerSec: r.answeredPerSec, p50Ms: r.latency.p50Ms, p99Ms: r.latency.p99Ms,
          accept: r.accept, reject: r.reject, timeouts: r.timeouts, serverCpuPercent: r.server?.cpuPercent,
          answeredPerServerCpuSecond: r.server?.answeredPerCpuSecond, core0BusyPercent: r.cores[SERVER_CPU]?.busyPercent,
        };
        runs.push(run);
        say(`  ${n.variant} c=${c} round ${round}: ${run.answeredPerSec}/s p99 ${run.p99Ms} ms (server CPU ${run.serverCpuPercent}%, core0 busy ${run.core0BusyPercent}%)`);
      }
    }
  }
  await cleanup();

  const best = (variant: Variant, c: number) => runs.filter((r) => r.variant === variant && r.concurrency === c).sort((x, y) => y.answeredPerSec - x.answeredPerSec)[0];
  const round2 = (x: number) => Math.round(x * 100) / 100;
  const ratios = o.concurrency.flatMap((c) => {
    const [base, ha] = [best('sqlite/memory', c), best('postgres/redis', c)];
    if (!base || !ha) return [];
    return [{ concurrency: c, answeredPerSec: round2(ha.answeredPerSec / base.answeredPerSec), p99: round2(ha.p99Ms / base.p99Ms), perServerCpuSecond: round2((ha.answeredPerServerCpuSecond ?? NaN) / (base.answeredPerServerCpuSecond ?? NaN)) }];
  });
  return { startedAt, users: o.users, seconds: o.seconds, loadavgAtStart: loadavg(), backgroundBusyPercent: background, runs, ratios, sanity: check };
}

export function formatHaTotp(r: HaTotpResult): string {
  const head = ['store/state', 'conc', 'round', 'answered/s', 'per srv CPU-s', 'accept', 'reject', 'timeouts', 'p50 ms', 'p99 ms', 'srv CPU%', 'core0 busy%'];
  const f = (x: number | undefined, d = 0) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
  const body = r.runs.map((x) => [x.variant, String(x.concurrency), String(x.round), f(x.answeredPerSec), f(x.answeredPerServerCpuSecond), String(x.accept), String(x.reject), String(x.timeouts), f(x.p50Ms, 2), f(x.p99Ms, 2), f(x.serverCpuPercent, 1), f(x.core0BusyPercent, 1)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const lines = ['', 'TOTP path on one node, shared engines beside the one-box default (server on core 0):', line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line), ''];
  for (const x of r.ratios) {
    lines.push(
      `postgres/redis vs sqlite/memory at concurrency ${x.concurrency} (best run each): answered/s ${x.answeredPerSec}x, per server CPU-second ${x.perServerCpuSecond}x, p99 ${x.p99}x. ` +
        `Goal: >= ${GOAL}x answered/s: ${x.answeredPerSec >= GOAL ? 'met' : 'NOT met'}.`,
    );
  }
  lines.push("note: PostgreSQL and Redis are not pinned: they share both cores with the server and the generator, and their CPU is not in 'srv CPU%'; accept = one per (user, 30 s step), the rest are replays (same work).");
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const o = parseOptions(process.argv.slice(2));
  const abort = (code: number) => void cleanup().finally(() => process.exit(code));
  setTimeout(() => {
    console.error(`ha-totp: hard limit of ${HARD_LIMIT_MS / 1000} s reached; stopping`);
    abort(3);
  }, HARD_LIMIT_MS).unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => abort(130));
  try {
    const r = await runHaTotpBench(o);
    console.log(formatHaTotp(r));
    if (o.json) console.log(JSON.stringify(r));
  } catch (err) {
    console.error(`ha-totp: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanup();
    process.exitCode = 1;
  }
}
