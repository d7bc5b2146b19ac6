/**
 * Our server (dist/cli.js from `npm run build`) for the benchmark, in a temp dir: config.yaml,
 * `user import` of the bench users (CSV), then `taskset -c CPU node dist/cli.js --config CFG serve`.
 * Ready = it answers an Access-Request (verified reply), not a sleep. Stopped with SIGTERM.
 *
 * Variants (`firstFactor`):
 *   none  - the TOTP path the target is about (appliance checked the password).
 *   local - argon2id verify per request as well (hash from the argon2 package defaults, the same
 *           as `user add`); all users share one password so one hash serves 10,000 users.
 *
 *   node --import tsx bench/ours.ts [--port 18123] [--users 10000] [--first-factor none|local] [--keep]
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { probeAccess, waitForServer } from './probe.js';
import { makeUsers, totpCode, totpStep, usersCsv, type BenchUser } from './users.js';
import type { RunningServer } from './freeradius.js';
import { spawnOnCore } from './processes.js';
import { writeBenchConfig } from './config.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const OURS_CLI = join(REPO, 'dist', 'cli.js');
/**
 * BENCH_OURS_FROM_SRC=1 runs src/cli.ts through tsx instead of dist/cli.js: for working on the
 * bench before a build exists. Numbers from it include the tsx loader and are not the ones to report.
 */
const FROM_SRC = process.env.BENCH_OURS_FROM_SRC === '1';
const CLI_ARGS = FROM_SRC ? ['--import', 'tsx', join(REPO, 'src', 'cli.ts')] : [OURS_CLI];

export type OursOptions = {
  port: number;
  secret: string;
  users: BenchUser[];
  firstFactor: 'none' | 'local';
  /** pino level; 'warn' = no per-request audit line (like FreeRADIUS with auth = no), 'info' = audit on. */
  logLevel: 'info' | 'warn';
  cpu?: number;
  dir?: string;
  /** Run node with --cpu-prof, writing the profile into this directory on exit. */
  profileDir?: string;
};

export function oursBuilt(): boolean {
  return FROM_SRC || existsSync(OURS_CLI);
}

function cli(cfg: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [...CLI_ARGS, '--config', cfg, ...args], { encoding: 'utf8', cwd: REPO, maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** One argon2id hash (package defaults, as `user add`) for the shared bench password. */
async function sharedHash(password: string): Promise<string> {
  const argon2 = (await import('argon2')).default;
  return argon2.hash(password, { type: argon2.argon2id });
}

/** Writes config + CSV, imports the users; returns the config path and the import time. */
export async function provisionOurs(dir: string, o: OursOptions): Promise<{ cfg: string; importMs: number }> {
  const cfg = writeBenchConfig(dir, { authPort: o.port, secret: o.secret, firstFactor: o.firstFactor, logLevel: o.logLevel });
  const csvPath = join(dir, 'users.csv');
  let hash = '';
  if (o.firstFactor === 'local') {
    const pw = o.users[0]!.password;
    if (o.users.some((u) => u.password !== pw)) throw new Error('first_factor local: bench users must share one password (makeUsers(n, seed, password))');
    hash = `"${await sharedHash(pw)}"`; // PHC strings contain commas: RFC 4180 quoting
  }
  writeFileSync(csvPath, usersCsv(o.users, () => hash));
  const t0 = performance.now();
  const r = cli(cfg, ['user', 'import', csvPath]);
  const importMs = Math.round(performance.now() - t0);
  if (r.status !== 0) throw new Error(`user import failed (${r.status}):\n${r.out.slice(0, 4000)}`);
  return { cfg, importMs };
}

/** Provisions and starts our server pinned to `cpu`; resolves once it answers an Access-Request. */
export async function startOurs(o: OursOptions): Promise<RunningServer & { importMs: number; logFile: string }> {
  if (!oursBuilt()) throw new Error(`${OURS_CLI} not found: run npm run build`);
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'bench-ours-'));
  const { cfg, importMs } = await provisionOurs(dir, o);
  const logFile = join(dir, 'serve.log');
  const fd = openSync(logFile, 'w');
  const args = [...(o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', o.profileDir] : []), ...CLI_ARGS, '--config', cfg, 'serve'];
  const child = spawnOnCore(o.cpu, process.execPath, args, { stdio: ['ignore', fd, fd], cwd: REPO });
  closeSync(fd);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const u = o.users[0]!;
  const ready = await waitForServer({
    port: o.port, secret: o.secret, userName: u.name,
    password: () => u.password + totpCode(u.key, totpStep(Date.now())),
    timeoutMs: 20_000, exited,
  });
  if (!ready) {
    child.kill('SIGTERM');
    const how = child.exitCode !== null ? `exited with ${child.exitCode}` : 'no answer within 20 s';
    throw new Error(`our server did not answer on 127.0.0.1:${o.port} (${how}; is dist/ being rebuilt?):\n${readFileSync(logFile, 'utf8').slice(-4000)}`);
  }
  return {
    name: `ours (first_factor ${o.firstFactor}, log ${o.logLevel}${FROM_SRC ? ', from src via tsx' : ''})`,
    pid: child.pid!,
    port: o.port,
    dir,
    importMs,
    logFile,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: {
    port: { type: 'string' }, users: { type: 'string' }, 'first-factor': { type: 'string' }, keep: { type: 'boolean' },
    secret: { type: 'string' }, 'log-level': { type: 'string' },
  } });
  const firstFactor = values['first-factor'] === 'local' ? 'local' : 'none';
  const port = Number(values.port ?? 18123);
  const secret = values.secret ?? 'bench-secret';
  const users = makeUsers(Number(values.users ?? 10_000), undefined, firstFactor === 'local' ? 'BenchPw1' : undefined);
  const srv = await startOurs({ port, secret, users, firstFactor, logLevel: values['log-level'] === 'info' ? 'info' : 'warn', cpu: 0 });
  console.log(`${srv.name} pid ${srv.pid} on 127.0.0.1:${port}, dir ${srv.dir}, user import ${srv.importMs} ms`);
  const u = users[1]!;
  const code = totpCode(u.key, totpStep(Date.now()));
  const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
  const show = (c: number | null) => (c === 2 ? 'Access-Accept' : c === 3 ? 'Access-Reject' : c === null ? 'no reply' : `code ${c}`);
  console.log(`right code: ${show(await probeAccess({ port, secret, userName: u.name, password: u.password + code, timeoutMs: 3000 }))}`);
  console.log(`same code again (replay): ${show(await probeAccess({ port, secret, userName: u.name, password: u.password + code, timeoutMs: 3000 }))}`);
  console.log(`wrong code: ${show(await probeAccess({ port, secret, userName: users[2]!.name, password: users[2]!.password + wrong, timeoutMs: 3000 }))}`);
  if (values.keep) {
    console.log('kept running until SIGINT/SIGTERM');
    const stop = () => void srv.stop().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } else {
    await srv.stop();
    rmSync(srv.dir, { recursive: true, force: true });
  }
}
