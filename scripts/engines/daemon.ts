// A server the tests and the bench run as a child process (Redis, PostgreSQL): started, stopped and started again on
// the same port for outage tests, its output kept for failure messages, its temp dir removed at close.
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DaemonOptions {
  name: string;
  dir: string;
  spawn: () => ChildProcess;
  /** One readiness probe: resolves if the server answers, throws if not (yet); tried every 20 ms up to `readyTimeoutMs`. */
  ready: () => Promise<void>;
  readyTimeoutMs: number;
  stopSignal: NodeJS.Signals;
}

/** Polls `o.ready` until it resolves; throws with the last probe's error when the daemon exits or the time is up. */
async function waitReady(o: DaemonOptions, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + o.readyTimeoutMs;
  let last: unknown;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (exited()) throw new Error(`${o.name} exited before answering`);
    try {
      return await o.ready();
    } catch (err) {
      last = err;
    }
    await sleep(20);
  }
  throw new Error(`${o.name} did not answer within ${o.readyTimeoutMs} ms: ${(last as Error | undefined)?.message}`);
}

/**
 * Starts the daemon once; on failure it is stopped, its dir removed, and the error carries its output.
 * start() starts it again (resolves once `ready` does); stop() sends the stop signal and waits for the
 * exit (idempotent); close() stops it for good and removes its dir.
 */
export async function startDaemon(o: DaemonOptions) {
  let output = '';
  let child: ChildProcess | undefined;
  let exit: Promise<void> = Promise.resolve();
  let exited = true;
  const start = async () => {
    if (!exited) return;
    exited = false;
    const c = o.spawn();
    child = c;
    c.stdout?.on('data', (d) => (output += d));
    c.stderr?.on('data', (d) => (output += d));
    exit = new Promise<void>((r) => c.once('exit', () => ((exited = true), r())));
    await waitReady(o, () => exited);
  };
  const stop = async () => {
    if (exited || !child) return;
    child.kill(o.stopSignal);
    await exit;
  };
  try {
    await start();
  } catch (err) {
    await stop();
    rmSync(o.dir, { recursive: true, force: true });
    throw new Error(`${o.name} did not start: ${(err as Error).message}\n${output}`, { cause: err });
  }
  return {
    start,
    stop,
    close: async () => {
      await stop();
      rmSync(o.dir, { recursive: true, force: true });
    },
    log: () => output,
  };
}
