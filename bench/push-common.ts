// What the push bench's modules share: its constants, names and tokens of the simulated users, and what to clean up.
import { type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { procCpuSeconds } from './proc.js';

export const PER_SOCKET = 250;
export const WARMUP_USERS = 300;
/** Approvals per second in the warm-up (which also compiles the approver's own code). */
export const WARMUP_RATE = 1000;
export const HARD_LIMIT_MS = 110_000;
/** The server child and the temp dir: killed / removed on the hard limit or a signal (they must not outlive the bench). */
export const running: { child?: ChildProcess; dir?: string } = {};

/** utime + stime of the process in ms. */
export const procCpuMs = (pid: number) => (procCpuSeconds(pid) ?? NaN) * 1000;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const mib = (kib: number) => Math.round((kib / 1024) * 10) / 10;
export const userName = (i: number) => (i < 0 ? `w${String(-i - 1).padStart(4, '0')}` : `u${String(i).padStart(5, '0')}`);
/** Deterministic bearer token per device (the store keeps only its SHA-256, as activation does). */
export const tokenOf = (name: string) => createHash('sha256').update(`bench-push-token:${name}`).digest('base64url');
export const pushTokenOf = (name: string) => `bench-fcm-${name}`;

/** Waits until the server has used no CPU for `quietMs` (it has worked through what it was sent). */
export async function settle(pid: number, quietMs = 300, maxMs = 10_000): Promise<void> {
  const until = Date.now() + maxMs;
  let last = procCpuMs(pid);
  let quietSince = Date.now();
  while (Date.now() < until) {
    await sleep(50);
    const now = procCpuMs(pid);
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= quietMs) return;
  }
}

