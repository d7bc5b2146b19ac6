// What the bench scripts share for their child processes: CPU pinning. (Free ports: test/helpers/ports.ts.)
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { cpus } from 'node:os';

/** Pinning needs two cores and taskset (util-linux). */
export function canPin(): boolean {
  return cpus().length >= 2 && spawnSync('taskset', ['-V']).status === 0;
}

/** Spawns `command` pinned to `cpu` with taskset, or unpinned when `cpu` is undefined. */
export function spawnOnCore(cpu: number | undefined, command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  return cpu === undefined ? spawn(command, args, options) : spawn('taskset', ['-c', String(cpu), command, ...args], options);
}
