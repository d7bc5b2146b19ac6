/**
 * FreeRADIUS 3.2 (apt `freeradius`, /usr/sbin/freeradius) with rlm_totp, configured from scratch
 * in a temp dir: nothing under /etc/freeradius is read or touched except the shipped dictionaries
 * (/usr/share/freeradius) and modules (/usr/lib/freeradius).
 *
 * Policy: User-Password = password + 6 digits. authorize splits it (regex), `files` loads
 * Cleartext-Password and TOTP-Secret (base32, control list) for the user, `pap` sets Auth-Type PAP;
 * authenticate runs `pap` then `totp`. rlm_totp in 3.2.1 has no replay guard: every correct
 * code is accepted, so FreeRADIUS answers Access-Accept where ours rejects a replay.
 *
 *   node --import tsx bench/freeradius.ts [--port 18121] [--users 10000] [--keep]
 * starts it, checks accept/reject with radclient, prints the config dir, stops (unless --keep).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { probeAccess, waitForServer } from './probe.js';
import { makeUsers, totpCode, totpStep, type BenchUser } from './users.js';
import { spawnOnCore } from './processes.js';

export const FREERADIUS_BIN = '/usr/sbin/freeradius';

export type FreeradiusConfig = {
  port: number;
  secret: string;
  users: BenchUser[];
  /** thread pool start_servers / max_servers; the packaged defaults are 5 / 32. */
  threads?: { start: number; max: number };
};

/** RADIUS string literal for FreeRADIUS config files. */
function quote(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Writes radiusd.conf, the users file and an empty local dictionary into dir. */
export function writeFreeradiusConfig(dir: string, c: FreeradiusConfig): void {
  for (const d of ['log', 'run', 'mods-config']) mkdirSync(join(dir, d), { recursive: true });
  const threads = c.threads ?? { start: 5, max: 32 };
  const conf = `# Written by bench/freeradius.ts: a self-contained FreeRADIUS 3.2 for the benchmark.
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = ${dir}/log
raddbdir = ${dir}
radacctdir = ${dir}/log/radacct
name = freeradius
confdir = ${dir}
modconfdir = ${dir}/mods-config
run_dir = ${dir}/run
db_dir = ${dir}
libdir = /usr/lib/freeradius
pidfile = ${dir}/run/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no

log {
	destination = files
	colourise = no
	file = ${dir}/log/radius.log
	stripped_names = no
	auth = no
	auth_badpass = no
	auth_goodpass = no
}

security {
	allow_core_dumps = no
	max_attributes = 200
	# Same as our bench config (mfa.reject_delay: 0): rejects are answered at once.
	reject_delay = 0
	status_server = yes
}

proxy_requests = no

# 3.2.1 has no global security.require_message_authenticator (added in 3.2.5); the
# per-client flag is the 3.2.1 way to drop Access-Requests without Message-Authenticator.
client bench {
	ipaddr = 127.0.0.1
	secret = ${quote(c.secret)}
	require_message_authenticator = yes
	nas_type = other
}

thread pool {
	start_servers = ${threads.start}
	max_servers = ${threads.max}
	min_spare_servers = 3
	max_spare_servers = 10
	max_requests_per_server = 0
	auto_limit_acct = no
}

modules {
	pap {
	}
	totp {
	}
	files {
		filename = ${dir}/users
	}
	always reject {
		rcode = reject
	}
}

instantiate {
}

server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = ${c.port}
	}

	authorize {
		# User-Password = password + 6-digit TOTP code: split it.
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

	post-auth {
	}
}
`;
  writeFileSync(join(dir, 'radiusd.conf'), conf);
  writeFileSync(join(dir, 'dictionary'), '# local dictionary: none\n');
  const lines: string[] = [];
  for (const u of c.users) lines.push(`${u.name}\tCleartext-Password := ${quote(u.password)}, TOTP-Secret := ${quote(u.secretBase32)}\n`);
  writeFileSync(join(dir, 'users'), lines.join(''));
}

/** `freeradius -C`: parse and instantiate the config without serving; throws with its output on error. */
export function checkFreeradiusConfig(dir: string): void {
  const r = spawnSync(FREERADIUS_BIN, ['-C', '-d', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`freeradius -C failed (${r.status}):\n${r.stdout}\n${r.stderr}\n${tail(join(dir, 'log', 'radius.log'))}`);
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export type RunningServer = { name: string; pid: number; port: number; dir: string; stop: () => Promise<void> };

/** Starts FreeRADIUS in the foreground pinned to `cpu` and resolves once it answers an Access-Request. */
export async function startFreeradius(opts: { dir?: string; port: number; secret: string; users: BenchUser[]; cpu?: number; threads?: { start: number; max: number } }): Promise<RunningServer> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'bench-freeradius-'));
  writeFreeradiusConfig(dir, { port: opts.port, secret: opts.secret, users: opts.users, ...(opts.threads ? { threads: opts.threads } : {}) });
  checkFreeradiusConfig(dir);
  const args = ['-f', '-d', dir];
  const child = spawnOnCore(opts.cpu, FREERADIUS_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const u = opts.users[0]!;
  const ready = await waitForServer({
    port: opts.port, secret: opts.secret, userName: u.name,
    password: () => u.password + totpCode(u.key, totpStep(Date.now())),
    timeoutMs: 15_000, exited,
  });
  if (!ready) {
    child.kill('SIGTERM');
    throw new Error(`FreeRADIUS did not answer on 127.0.0.1:${opts.port}:\n${output}\n${tail(join(dir, 'log', 'radius.log'))}`);
  }
  return {
    name: 'freeradius',
    pid: child.pid!,
    port: opts.port,
    dir,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

export function freeradiusVersion(): string {
  const r = spawnSync(FREERADIUS_BIN, ['-v'], { encoding: 'utf8' });
  return /FreeRADIUS Version [\d.]+/.exec(r.stdout ?? '')?.[0] ?? 'unknown';
}

/** radclient one Access-Request; returns radclient's output (used to prove the config by hand). */
export function radclientAuth(port: number, secret: string, user: string, password: string): { status: number | null; out: string } {
  const input = `User-Name = "${user}"\nUser-Password = "${password}"\nNAS-Identifier = "radclient"\nMessage-Authenticator = 0x00\n`;
  const r = spawnSync('radclient', ['-x', '-r', '1', '-t', '2', `127.0.0.1:${port}`, 'auth', secret], { input, encoding: 'utf8' });
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { port: { type: 'string' }, users: { type: 'string' }, keep: { type: 'boolean' }, secret: { type: 'string' } } });
  const port = Number(values.port ?? 18121);
  const secret = values.secret ?? 'bench-secret';
  const users = makeUsers(Number(values.users ?? 10_000));
  const srv = await startFreeradius({ port, secret, users, cpu: 0 });
  console.log(`${freeradiusVersion()} pid ${srv.pid} on 127.0.0.1:${port}, config ${srv.dir}`);
  const u = users[1]!;
  const code = totpCode(u.key, totpStep(Date.now()));
  const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
  for (const [label, pw] of [['right password + code', u.password + code], ['right password + wrong code', u.password + wrong], ['wrong password + code', 'x' + u.password + code]] as const) {
    const r = radclientAuth(port, secret, u.name, pw);
    const line = r.out.split('\n').find((l) => l.startsWith('Received')) ?? r.out.trim().split('\n').pop();
    console.log(`radclient ${label}: ${line}`);
  }
  console.log(`probe (bench encoder): code ${await probeAccess({ port, secret, userName: u.name, password: u.password + code })}`);
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
