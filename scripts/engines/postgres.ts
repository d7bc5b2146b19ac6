// A private PostgreSQL (Debian `postgresql`) for tests and the bench: initdb into a temp dir, the server in the
// foreground on a free loopback port. initdb and postgres refuse to run as root, so under root both run
// as the `postgres` system user (child_process uid/gid, as runuser would) and the dir is chowned to it.
// stop() (SIGINT: fast shutdown) and start() take the server down and back on the same port and data dir (outage tests).
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startDaemon } from './daemon.js';
import { freeTcpPort } from './ports.js';

export type PostgresInstance = Awaited<ReturnType<typeof startPostgres>>;

/** The newest installed major version's bin dir, e.g. /usr/lib/postgresql/15/bin. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  if (versions.length === 0) throw new Error('PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): run scripts/install-test-deps.sh');
  versions.sort((a, b) => Number(b) - Number(a));
  return join(root, versions[0]!, 'bin');
}

function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const line = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).trim();
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** One statement on its own connection (`SELECT 1` is the readiness probe: TCP accepting is not enough, a starting server refuses queries). */
export async function query(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query(sql);
  } finally {
    await client.end().catch(() => {});
  }
}

let databases = 0;

export interface PostgresStartOptions {
  /** ssl=on with this certificate and key (PEM files); clients may still connect without TLS. */
  ssl?: { cert: string; key: string };
}

export async function startPostgres(options: PostgresStartOptions = {}) {
  const bin = postgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-pg-'));
  const ids = runAs();
  if (ids.uid !== undefined) chownSync(dir, ids.uid, ids.gid!);
  const password = `pw-${process.pid}-${Date.now()}`;
  const pwfile = join(dir, 'pw');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (ids.uid !== undefined) chownSync(pwfile, ids.uid, ids.gid!);
  const data = join(dir, 'data');
  const env = { ...process.env, LC_ALL: 'C', HOME: dir, USER: ids.uid !== undefined ? 'postgres' : userInfo().username };
  execFileSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--pwfile', pwfile, '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync', '-E', 'UTF8'], {
    ...ids,
    env,
    cwd: dir,
    stdio: 'pipe',
  });
  // Copied into the server's own dir, owned by it and 0600: postgres refuses a key others can read.
  const ssl: string[] = [];
  for (const name of options.ssl ? (['cert', 'key'] as const) : []) {
    const file = join(dir, `server.${name}`);
    copyFileSync(options.ssl![name], file);
    if (ids.uid !== undefined) chownSync(file, ids.uid, ids.gid!);
    chmodSync(file, 0o600);
    ssl.push('-c', `ssl_${name}_file=${file}`);
  }
  if (ssl.length > 0) ssl.push('-c', 'ssl=on');
  const port = await freeTcpPort();
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`; // the superuser, the maintenance database
  const daemon = await startDaemon({
    name: 'postgres',
    dir,
    // fsync off: a test database need not survive a power cut, and the shared machine's disk is slow.
    spawn: () =>
      spawn(
        join(bin, 'postgres'),
        ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=100', ...ssl],
        { ...ids, env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    ready: () => query(url, 'SELECT 1'),
    readyTimeoutMs: 30_000,
    // SIGINT: PostgreSQL's fast shutdown (open sessions are ended, not waited for).
    stopSignal: 'SIGINT',
  });
  return {
    url,
    port,
    /** Creates a new, empty database and returns its URL. */
    async createDatabase(name = `radius_mfa_${process.pid}_${++databases}`) {
      await query(url, `CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      return url.replace(/\/postgres$/, `/${name}`);
    },
    ...daemon,
  };
}
