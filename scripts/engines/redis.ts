// A private Redis (Debian `redis-server`) for tests and the bench: foreground child on a free loopback port, no
// persistence, its own temp dir. stop() and start() take it down and bring it back on the same port
// (empty, as a restarted Redis without persistence is) for outage tests.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './daemon.js';
import { freeTcpPort } from './ports.js';

export type RedisInstance = Awaited<ReturnType<typeof startRedis>>;

export interface RedisStartOptions {
  /** More redis-server arguments, after (so overriding) the defaults: TLS, replicaof, --sentinel. */
  args?: (port: number) => string[];
  /** A config file's text, written to the temp dir and loaded first (Sentinel needs a file it can rewrite). */
  config?: string;
  /** The readiness probe's connection (a TLS one when the plain port is off); default plain TCP. */
  connect?: (port: number) => Socket;
}

/** PING on 127.0.0.1:port; throws unless it gets +PONG within 1 s. */
function ping(port: number, open: (port: number) => Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = open(port);
    let got = '';
    const fail = (why: string) => (s.destroy(), reject(new Error(`PING on 127.0.0.1:${port}: ${why}`)));
    s.setTimeout(1000, () => fail('no answer in 1 s'));
    // Written before the (TLS) connection is up: the socket holds it until then.
    s.write('PING\r\n');
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (!got.includes('\r\n')) return;
      s.destroy();
      if (got.startsWith('+PONG')) resolve();
      else reject(new Error(`PING on 127.0.0.1:${port}: ${got.trim()}`));
    });
    s.once('error', (err) => fail(err.message));
  });
}

export async function startRedis(options: RedisStartOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-redis-'));
  const port = await freeTcpPort();
  const conf = join(dir, 'redis.conf');
  if (options.config !== undefined) writeFileSync(conf, options.config);
  const daemon = await startDaemon({
    name: 'redis-server',
    dir,
    // noeviction: what docs/ha.md asks of a production Redis (security counts must never be evicted).
    spawn: () =>
      spawn(
        'redis-server',
        [
          ...(options.config === undefined ? [] : [conf]),
          ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes'],
          ...(options.args?.(port) ?? []),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    ready: () => ping(port, options.connect ?? ((p) => connect(p, '127.0.0.1'))),
    readyTimeoutMs: 10_000,
    stopSignal: 'SIGTERM',
  });
  return { url: `redis://127.0.0.1:${port}`, port, ...daemon };
}
