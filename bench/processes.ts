// What the bench scripts share for their child processes: free loopback ports and CPU pinning.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { cpus } from 'node:os';

/** A free UDP port on loopback (bound then released). */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

/** A free TCP port on loopback (bound then released). */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** Pinning needs two cores and taskset (util-linux). */
export function canPin(): boolean {
  return cpus().length >= 2 && spawnSync('taskset', ['-V']).status === 0;
}

/** Spawns `command` pinned to `cpu` with taskset, or unpinned when `cpu` is undefined. */
export function spawnOnCore(cpu: number | undefined, command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  return cpu === undefined ? spawn(command, args, options) : spawn('taskset', ['-c', String(cpu), command, ...args], options);
}
