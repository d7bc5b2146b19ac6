// A private Redis (Debian `redis-server`) for tests and the bench: foreground child on a free loopback port, no
// persistence, its own temp dir. stop() and start() take it down and bring it back on the same port
// (empty, as a restarted Redis without persistence is) for outage tests.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from './daemon.js';
import { freeTcpPort } from './ports.js';

export interface RedisInstance extends Daemon {
  /** redis://127.0.0.1:port */
  url: string;
  port: number;
}

/** PING on 127.0.0.1:port; throws unless it gets +PONG within 1 s. */
function ping(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const fail = (why: string) => (s.destroy(), reject(new Error(`PING on 127.0.0.1:${port}: ${why}`)));
    s.setTimeout(1000, () => fail('no answer in 1 s'));
    s.once('connect', () => s.write('PING\r\n'));
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

export async function startRedis(): Promise<RedisInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'radius-mfa-redis-'));
  const port = await freeTcpPort();
  const daemon = await startDaemon({
    name: 'redis-server',
    dir,
    // noeviction: what docs/ha.md asks of a production Redis (security counts must never be evicted).
    spawn: () =>
      spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    ready: () => ping(port),
    readyTimeoutMs: 10_000,
    stopSignal: 'SIGTERM',
  });
  return { url: `redis://127.0.0.1:${port}`, port, ...daemon };
}
