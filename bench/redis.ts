// A private Redis (Debian `redis-server`) for tests and the bench: foreground child on a free loopback port, no
// persistence, its own temp dir. stop() and start() take it down and bring it back on the same port
// (empty, as a restarted Redis without persistence is) for outage tests.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './daemon.js';
import { freeTcpPort } from './ports.js';

export interface RedisInstance {
  /** redis://127.0.0.1:port */
  url: string;
  port: number;
  /** Stops the server (SIGTERM) and waits for it to exit; idempotent. */
  stop(): Promise<void>;
  /** Starts it again on the same port; resolves once it answers PING. */
  start(): Promise<void>;
  /** Stops it for good and removes its dir. */
  close(): Promise<void>;
  log(): string;
}

/** Resolves once PING on 127.0.0.1:port gets +PONG; bounded by `timeoutMs`. */
async function waitForPong(port: number, timeoutMs: number, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (exited()) throw new Error('redis-server exited before answering PING');
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let got = '';
      s.setTimeout(1000, () => (s.destroy(), resolve(false)));
      s.once('connect', () => s.write('PING\r\n'));
      s.on('data', (d) => {
        got += d.toString('latin1');
        if (got.includes('\r\n')) {
          s.destroy();
          resolve(got.startsWith('+PONG'));
        }
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`redis-server on 127.0.0.1:${port} did not answer PING within ${timeoutMs} ms`);
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
    ready: (exited) => waitForPong(port, 10_000, exited),
    stopSignal: 'SIGTERM',
  });
  return { url: `redis://127.0.0.1:${port}`, port, ...daemon };
}
