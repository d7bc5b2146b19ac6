// A real FreeRADIUS 3.2 (Debian `freeradius`) as the upstream first factor: a temp raddb written here,
// run in the foreground on a free loopback port. Only the shipped dictionaries and modules are read.
//   users:  Cleartext-Password + reply attributes (Class, Filter-Id, Cisco-AVPair, ...)
//   challengers: password -> Access-Challenge (State + Reply-Message) -> answer -> Accept
// Accounting-Requests are answered and written to a detail file the test can read; so are Access-Requests
// (authDetail), so a test sees what we sent upstream. CHAP and MS-CHAP (mschap) check the users' passwords;
// with `eap` certificates EAP is terminated here too: PEAP (inner EAP-MSCHAPv2) and EAP-TTLS (inner PAP)
// through an inner-tunnel server that copies the inner User-Name to the outer Access-Accept.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeUdpPort } from '../../scripts/engines/ports.js';
import { radiusdPaths } from '../../scripts/engines/freeradius-conf.js';

export const FREERADIUS = '/usr/sbin/freeradius';

export interface UpstreamUser {
  name: string;
  password: string;
  /** Reply attributes in FreeRADIUS users-file syntax, e.g. `Class := "staff"`. */
  reply?: string[];
}

export interface UpstreamChallenger {
  name: string;
  password: string;
  /** Reply-Message of the Access-Challenge. */
  prompt: string;
  /** What the user must answer to the challenge. */
  answer: string;
}

export interface FreeradiusOptions {
  secret: string;
  users: readonly UpstreamUser[];
  challengers?: readonly UpstreamChallenger[];
  /**
   * FreeRADIUS 3.2.1 predates the BlastRADIUS fixes (3.2.5) and signs no reply on its own; true (default)
   * makes it add Message-Authenticator to every Access-* reply, as a fixed or configured upstream does.
   */
  signReplies?: boolean;
  /** PEM files for the eap module's TLS (PEAP, EAP-TTLS); no EAP without them. */
  eap?: { cert: string; key: string; ca: string };
  /** false: the inner identity is not copied to the outer Access-Accept (an upstream that does not name the user). */
  innerIdentity?: boolean;
}

export interface Freeradius {
  port: number;
  acctPort: number;
  secret: string;
  /** The accounting detail file FreeRADIUS wrote so far ('' before the first request). */
  accountingDetail(): string;
  /** Every Access-Request FreeRADIUS received so far, in its detail format ('' before the first). */
  authDetail(): string;
  output(): string;
  stop(): Promise<void>;
}

const q = (s: string) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

function radiusdConf(dir: string, port: number, acctPort: number, o: FreeradiusOptions): string {
  const sign = o.signReplies === false ? '' : '\t\t\t\t\t\t&Message-Authenticator := 0x00\n';
  const signSection = o.signReplies === false ? '' : '\t\tupdate reply {\n\t\t\t&Message-Authenticator := 0x00\n\t\t}\n';
  const challenge = (o.challengers ?? [])
    .map(
      (c, i) => `		if (&User-Name == ${q(c.name)}) {
			if (!&State) {
				if (&User-Password == ${q(c.password)}) {
					update reply {
						&Reply-Message := ${q(c.prompt)}
						&State := 0x75707374726561${(0x30 + i).toString(16)}
${sign}					}
					update control {
						&Response-Packet-Type := Access-Challenge
					}
					handled
				}
				reject
			}
			if (&State == 0x75707374726561${(0x30 + i).toString(16)} && &User-Password == ${q(c.answer)}) {
				update control {
					&Auth-Type := Accept
				}
				ok
				return
			}
			reject
		}
`,
    )
    .join('');
  return `# Written by test/helpers/freeradius.ts: an upstream RADIUS server for tests.
${radiusdPaths(dir)}max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no

log {
	destination = stdout
	colourise = no
	auth = yes
	auth_badpass = no
	auth_goodpass = no
}

security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}

proxy_requests = no

client test {
	ipaddr = 127.0.0.1
	secret = ${q(o.secret)}
	require_message_authenticator = yes
	nas_type = other
}

thread pool {
	start_servers = 2
	max_servers = 4
	min_spare_servers = 1
	max_spare_servers = 4
	max_requests_per_server = 0
}

modules {
	pap {
	}
	chap {
	}
	mschap {
	}
	files {
		filename = ${dir}/users
	}
	detail {
		filename = ${dir}/log/detail
		header = "%t"
	}
	detail auth_detail {
		filename = ${dir}/log/auth-detail
		header = "%t"
	}
${o.eap ? eapModule(o.eap) : ''}
	always ok {
		rcode = ok
	}
	always handled {
		rcode = handled
	}
	always reject {
		rcode = reject
	}
}

server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = ${port}
	}
	listen {
		type = acct
		ipaddr = 127.0.0.1
		port = ${acctPort}
	}

	authorize {
		auth_detail
${challenge}		files
${o.eap ? '\t\teap {\n\t\t\tok = return\n\t\t}\n' : ''}		chap
		mschap
		pap
	}

	authenticate {
		Auth-Type PAP {
			pap
		}
		Auth-Type CHAP {
			chap
		}
		Auth-Type MS-CHAP {
			mschap
		}
${o.eap ? '\t\teap\n' : ''}	}

	preacct {
	}

	accounting {
		detail
		ok
	}

	post-auth {
		# The inner tunnel's User-Name (PEAP, TTLS) reaches the outer Access-Accept through session-state,
		# replacing the outer identity rlm_eap put there (RFC 2865: one User-Name).
		if (&session-state:User-Name) {
			update reply {
				&User-Name := &session-state:User-Name
			}
		}
${signSection}		Post-Auth-Type REJECT {
${signSection}${o.eap ? '\t\t\teap\n' : ''}			ok
		}
	}
}
${o.eap ? innerTunnel(o.innerIdentity !== false) : ''}`;
}

function eapModule(tls: { cert: string; key: string; ca: string }): string {
  return `	eap {
		default_eap_type = peap
		timer_expire = 60
		ignore_unknown_eap_types = no
		max_sessions = 256
		tls-config tls-common {
			private_key_file = ${tls.key}
			certificate_file = ${tls.cert}
			ca_file = ${tls.ca}
			cipher_list = "DEFAULT"
			tls_min_version = "1.2"
			tls_max_version = "1.2"
			cache {
				enable = no
			}
		}
		tls {
			tls = tls-common
		}
		ttls {
			tls = tls-common
			default_eap_type = md5
			virtual_server = "inner-tunnel"
		}
		peap {
			tls = tls-common
			default_eap_type = mschapv2
			virtual_server = "inner-tunnel"
		}
		mschapv2 {
		}
		md5 {
		}
	}
`;
}

function innerTunnel(copyIdentity: boolean): string {
  return `
server inner-tunnel {
	authorize {
		files
		mschap
		eap {
			ok = return
		}
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
		Auth-Type MS-CHAP {
			mschap
		}
		eap
	}
	post-auth {
${copyIdentity ? '\t\tupdate outer.session-state {\n\t\t\t&User-Name := &request:User-Name\n\t\t}\n' : ''}		Post-Auth-Type REJECT {
			ok
		}
	}
}
`;
}

function usersFile(users: readonly UpstreamUser[]): string {
  return users
    .map((u) => {
      const reply = (u.reply ?? []).map((r) => `\t${r}`).join(',\n');
      return `${u.name}\tCleartext-Password := ${q(u.password)}\n${reply}\n`;
    })
    .join('\n');
}

/** Checks the config (`-C`), starts FreeRADIUS (`-f -l stdout`) and waits for its "Ready to process requests" line. */
export async function startFreeradius(o: FreeradiusOptions): Promise<Freeradius> {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-freeradius-'));
  for (const d of ['log', 'run', 'mods-config']) mkdirSync(join(dir, d), { recursive: true });
  const [port, acctPort] = [await freeUdpPort(), await freeUdpPort()];
  writeFileSync(join(dir, 'radiusd.conf'), radiusdConf(dir, port, acctPort, o));
  writeFileSync(join(dir, 'dictionary'), '# no local attributes\n');
  writeFileSync(join(dir, 'users'), usersFile(o.users));
  const check = spawnSync(FREERADIUS, ['-C', '-l', 'stdout', '-d', dir], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`freeradius -C failed:\n${check.stdout}\n${check.stderr}`);

  const child: ChildProcess = spawn(FREERADIUS, ['-f', '-l', 'stdout', '-d', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  const ready = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 15_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes('Ready to process requests')) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exit.then(() => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      await exit;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  if (!(await ready)) {
    await stop();
    throw new Error(`FreeRADIUS did not start:\n${output}`);
  }
  return {
    port,
    acctPort,
    secret: o.secret,
    authDetail: () => {
      try {
        return readFileSync(join(dir, 'log', 'auth-detail'), 'utf8');
      } catch {
        return '';
      }
    },
    accountingDetail: () => {
      try {
        return readFileSync(join(dir, 'log', 'detail'), 'utf8');
      } catch {
        return '';
      }
    },
    output: () => output,
    stop,
  };
}
