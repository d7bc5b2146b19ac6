// A private Redis (Debian `redis-server`) for tests: foreground child on a free loopback port, no
// persistence, its own temp dir. stop() and start() take it down and bring it back on the same port
// (empty, as a restarted Redis without persistence is) for outage tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  let output = '';
  let child: ChildProcess | undefined;
  let exit: Promise<void> = Promise.resolve();
  let exited = true;

  const start = async () => {
    if (!exited) return;
    exited = false;
    // noeviction: what docs/ha.md asks of a production Redis (security counts must never be evicted).
    const c = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = c;
    c.stdout!.on('data', (d) => (output += d));
    c.stderr!.on('data', (d) => (output += d));
    exit = new Promise<void>((r) => c.once('exit', () => ((exited = true), r())));
    await waitForPong(port, 10_000, () => exited);
  };
  const stop = async () => {
    if (exited || !child) return;
    child.kill('SIGTERM');
    await exit;
  };
  try {
    await start();
  } catch (err) {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${output}`, { cause: err });
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    stop,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => output,
  };
}
