// The servers the bench measures, each a child pinned to a core, ready once it answers (no sleeps), stopped
// with SIGTERM: FreeRADIUS 3.2 configured from scratch in a temp dir (docs/performance.md: the password, then
// rlm_totp, which has no replay guard in 3.2.1), ours (dist/cli.js, as `npm start` runs it), the echo responder.
// Checked by hand with radclient: node --import tsx bench/servers.ts freeradius|ours [--crypt | --local]
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeBenchConfig, type BenchConfig } from './config.js';
import { freeUdpPort } from '../scripts/engines/ports.js';
import { probeAccess } from './probe.js';
import { makeUsers, totpCode, type BenchUser } from './users.js';
import { radiusdPaths } from '../scripts/engines/freeradius-conf.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** BENCH_OURS_FROM_SRC=1: src/cli.ts through tsx, for working on the bench without a build (not numbers to report). */
export const FROM_SRC = process.env.BENCH_OURS_FROM_SRC === '1' || !existsSync(join(REPO, 'dist', 'cli.js'));
/** How the bench runs `radius-mfa`: dist/ when built, else src/ through tsx. */
export const CLI = FROM_SRC ? ['--import', 'tsx', join(REPO, 'src', 'cli.ts')] : [join(REPO, 'dist', 'cli.js')];
const FREERADIUS = '/usr/sbin/freeradius';
/**
 * The node flags a single node runs with: `npm start`'s (package.json), which the service unit's NODE_OPTIONS
 * repeats (test/service-unit.test.ts). Nodes on PostgreSQL + Redis run without them (docs/ha.md).
 */
export const SINGLE_NODE_FLAGS = nodeFlagsOfStart((JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start);

/** The flags between `node` and the script in an npm script such as `node --max-semi-space-size=4 dist/cli.js ...`. */
function nodeFlagsOfStart(script: string): string[] {
  const flags = /^node ((?:--\S+ )*)dist\/cli\.js /.exec(script);
  if (!flags) throw new Error(`npm start is not \`node [FLAGS] dist/cli.js ...\`: ${script}`);
  return flags[1]!.split(' ').filter(Boolean);
}

/** Pinning needs two cores and taskset (util-linux). */
export function canPin(): boolean {
  return cpus().length >= 2 && spawnSync('taskset', ['-V']).status === 0;
}

/** Spawns `command` pinned to `cpu` with taskset, or unpinned when `cpu` is undefined. */
export function spawnOnCore(cpu: number | undefined, command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  return cpu === undefined ? spawn(command, args, options) : spawn('taskset', ['-c', String(cpu), command, ...args], options);
}

/** Pins this process, all its threads, to `cpu` (undefined: back to every core); the children it spawns later inherit that. */
export function pinSelf(cpu: number | undefined): void {
  spawnSync('taskset', ['-a', '-p', '-c', cpu === undefined ? `0-${cpus().length - 1}` : String(cpu), String(process.pid)], { stdio: 'ignore' });
}

export type RunningServer = Awaited<ReturnType<typeof launch>>;

export type LaunchOptions = {
  /** stdout to a pipe this process reads and discards, as journald or a log shipper would. */
  pipe?: boolean;
  /** An IPC channel (stdio[3]). */
  ipc?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Resolves true once the child is ready, instead of its first answered Status-Server (bounded by 20 s and its exit). */
  ready?: (child: ChildProcess) => Promise<boolean>;
};

/** Starts a server with stdout and stderr to `logFile`; resolves once it is ready, with `startMs` from spawn to then. */
export async function launch(name: string, cpu: number | undefined, cmd: string, args: string[], port: number, secret: string, dir: string, logFile: string, more: LaunchOptions = {}) {
  const fd = openSync(logFile, 'a');
  const t0 = performance.now();
  const child = spawnOnCore(cpu, cmd, args, { stdio: ['ignore', more.pipe ? 'pipe' : fd, fd, ...(more.ipc ? ['ipc' as const] : [])], cwd: REPO, env: more.env ?? process.env });
  child.stdout?.resume();
  closeSync(fd);
  let [gone, timer] = [false, undefined as NodeJS.Timeout | undefined];
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  void exited.then(() => (gone = true));
  const statusServer = async () => { // a Status-Server every 20 ms until one is answered
    while (!gone) if ((await probeAccess({ port, secret, userName: '', password: '', status: true, timeoutMs: 20, tries: 50 })).code !== null) return true;
    return false;
  };
  const up = await Promise.race([(more.ready ?? statusServer)(child), exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 20_000)))]);
  clearTimeout(timer);
  if (!up) {
    child.kill('SIGKILL');
    throw new Error(`${name} did not answer on 127.0.0.1:${port} (${child.exitCode === null ? 'no answer in 20 s' : `exited ${child.exitCode}`}):\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
  }
  return {
    name, pid: child.pid!, port, dir, logFile, child, startMs: Math.round(performance.now() - t0),
    stop: async (): Promise<void> => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

export type FreeradiusOptions = {
  port: number; secret: string; users: BenchUser[]; cpu?: number;
  /** thread pool start_servers : max_servers; the packaged defaults are 5 : 32. */
  threads?: [number, number];
  /** log { auth = yes }: one "Login OK" line per request, as our audit line. */
  authLog: boolean;
  /** Crypt-Password (e.g. SHA-512 crypt, `openssl passwd -6`) for every user instead of Cleartext-Password. */
  cryptHash?: string;
};

const quote = (s: string) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

export async function startFreeradius(o: FreeradiusOptions): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-freeradius-'));
  for (const d of ['log', 'run', 'mods-config']) mkdirSync(join(dir, d), { recursive: true });
  const [start, max] = o.threads ?? [5, 32];
  writeFileSync(join(dir, 'radiusd.conf'), `# Written by bench/servers.ts
${radiusdPaths(dir)}max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
proxy_requests = no
log {
	destination = files
	file = ${dir}/log/radius.log
	auth = ${o.authLog ? 'yes' : 'no'}
	auth_badpass = no
	auth_goodpass = no
}
# reject_delay 0 as ours in the throughput benches (mfa.reject_delay: 0).
security {
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}
# 3.2.1 has no global require_message_authenticator (3.2.5 added it): the per-client flag drops requests without one.
client bench {
	ipaddr = 127.0.0.1
	secret = ${quote(o.secret)}
	require_message_authenticator = yes
}
thread pool {
	start_servers = ${start}
	max_servers = ${max}
	min_spare_servers = 3
	max_spare_servers = 10
	max_requests_per_server = 0
}
modules {
	pap {}
	totp {}
	files { filename = ${dir}/users }
	always reject { rcode = reject }
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = ${o.port}
	}
	authorize {
		if (&User-Password =~ /^(.*)([0-9]{6})$/) {
			update request {
				&TOTP-Password := "%{2}"
				&User-Password := "%{1}"
			}
		}
		else {
			reject
		}
		files
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
			totp
		}
	}
}
`);
  writeFileSync(join(dir, 'dictionary'), '');
  const password = (u: BenchUser) => (o.cryptHash ? `Crypt-Password := '${o.cryptHash}'` : `Cleartext-Password := ${quote(u.password)}`);
  writeFileSync(join(dir, 'users'), o.users.map((u) => `${u.name}\t${password(u)}, TOTP-Secret := ${quote(u.secretBase32)}\n`).join(''));
  const check = spawnSync(FREERADIUS, ['-C', '-d', dir], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`freeradius -C failed (${check.status}):\n${readFileSync(join(dir, 'log', 'radius.log'), 'utf8').slice(-2000)}`);
  const name = `FreeRADIUS (auth log ${o.authLog ? 'yes' : 'no'}${o.cryptHash ? ', crypt' : ''})`;
  return launch(name, o.cpu, FREERADIUS, ['-f', '-d', dir], o.port, o.secret, dir, join(dir, 'log', 'stdout.log'));
}

export function freeradiusVersion(): string {
  const r = spawnSync(FREERADIUS, ['-v'], { encoding: 'utf8' });
  return /FreeRADIUS Version [\d.]+/.exec(r.stdout ?? '')?.[0] ?? 'FreeRADIUS (version unknown)';
}

/** A store in a temp dir with `users` imported through `radius-mfa user import` (`passwordHash`: one PHC string for all). */
export function provisionOurs(users: BenchUser[], secret: string, passwordHash = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'bench-ours-'));
  writeBenchConfig(dir, { authPort: 1, secret, firstFactor: 'none', logLevel: 'warn', throughput: true }, 'import.yaml');
  const hash = passwordHash ? `"${passwordHash}"` : ''; // PHC strings contain commas
  writeFileSync(join(dir, 'users.csv'), ['username,method,totp_secret,password_hash', ...users.map((u) => `${u.name},totp,${u.secretBase32},${hash}`)].join('\n') + '\n');
  oursCli(dir, ['user', 'import', join(dir, 'users.csv')]);
  return dir;
}

/** `radius-mfa ARGS` on the store in `dir` (provisionOurs); throws with its output if it fails. */
export function oursCli(dir: string, args: string[]): void {
  const r = spawnSync(process.execPath, [...CLI, '--config', join(dir, 'import.yaml'), ...args], { encoding: 'utf8', cwd: REPO, maxBuffer: 16 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`radius-mfa ${args.join(' ')} failed (${r.status}):\n${`${r.stdout}${r.stderr}`.slice(0, 4000)}`);
}

/**
 * Our server on the store in `dir` (provisionOurs), pinned to `cpu`, with the node flags of its kind of node
 * (SINGLE_NODE_FLAGS unless `shared`); its stdout to a file or a pipe; `nodeArgs` (after those: they win) e.g. --cpu-prof.
 */
export async function startOurs(dir: string, c: Omit<BenchConfig, 'authPort'> & { auditTo?: 'file' | 'pipe' }, cpu?: number, nodeArgs: string[] = []): Promise<RunningServer> {
  const port = await freeUdpPort();
  const tag = `${c.firstFactor}-${c.logLevel}-${port}`;
  const cfg = writeBenchConfig(dir, { ...c, authPort: port }, `config-${tag}.yaml`);
  const name = `ours (first_factor ${c.firstFactor}, log ${c.logLevel}${c.auditTo === 'pipe' ? ' to a pipe' : ''}${c.shared ? ', postgres/redis' : ''}${FROM_SRC ? ', src/ via tsx' : ''})`;
  return launch(name, cpu, process.execPath, [...(c.shared ? [] : SINGLE_NODE_FLAGS), ...nodeArgs, ...CLI, '--config', cfg, 'serve'], port, c.secret, dir, join(dir, `serve-${tag}.log`), { pipe: c.auditTo === 'pipe' });
}

export async function startEcho(secret: string, cpu?: number): Promise<RunningServer> {
  const port = await freeUdpPort();
  const dir = mkdtempSync(join(tmpdir(), 'bench-echo-'));
  return launch('echo', cpu, process.execPath, ['--import', 'tsx', join(REPO, 'bench', 'echo-server.ts'), String(port), secret], port, secret, dir, join(dir, 'echo.log'));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [which = 'freeradius', flag] = process.argv.slice(2);
  const secret = 'bench-secret';
  const users = makeUsers(100, 'BenchPw1');
  const hash = flag === '--crypt' ? spawnSync('openssl', ['passwd', '-6', 'BenchPw1'], { encoding: 'utf8' }).stdout.trim() : undefined;
  const srv = which === 'ours'
    ? await startOurs(provisionOurs(users, secret, flag === '--local' ? await (await import('../src/auth/password-hash.js')).hashPassword('BenchPw1') : ''),
      { secret, firstFactor: flag === '--local' ? 'local' : 'none', logLevel: 'info', throughput: true })
    : await startFreeradius({ port: await freeUdpPort(), secret, users, authLog: true, ...(hash ? { cryptHash: hash } : {}) });
  const u = users[1]!;
  const code = totpCode(u.key);
  const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
  for (const [label, pw] of [['right password + code', u.password + code], ['right password + wrong code', u.password + wrong], ['wrong password + code', `x${u.password}${code}`]]) {
    const input = `User-Name = "${u.name}"\nUser-Password = "${pw}"\nMessage-Authenticator = 0x00\n`;
    const r = spawnSync('radclient', ['-r', '1', '-t', '3', `127.0.0.1:${srv.port}`, 'auth', secret], { input, encoding: 'utf8' });
    console.log(`${srv.name}, radclient ${label}: ${`${r.stdout}${r.stderr}`.split('\n').find((l) => l.startsWith('Received') || l.includes('No reply')) ?? r.stderr}`);
  }
  console.log(`start-up to the first answered Status-Server: ${srv.startMs} ms; probe (bench encoder), right code again: ${(await probeAccess({ port: srv.port, secret, userName: u.name, password: u.password + code, timeoutMs: 3000 })).code}`);
  await srv.stop();
  rmSync(srv.dir, { recursive: true, force: true });
}
