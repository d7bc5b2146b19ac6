// Linux /proc probes shared by the benches: CPU of a process and of each core, the machine's load, memory,
// socket drops. Each returns an empty or undefined value where /proc is missing, so the bench still runs.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/** A /proc file's text, or undefined where it (or /proc) is missing: the bench still runs, without the probe. */
function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** /proc/PID/stat: the command name, and the fields after it (f[0] is field 3, state: field n is f[n - 3]). */
function stat(pid: number | string): { name: string; f: string[] } | undefined {
  const text = read(`/proc/${pid}/stat`);
  return text === undefined ? undefined : { name: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')), f: text.slice(text.lastIndexOf(')') + 2).split(' ') };
}

/** CPU seconds (utime + stime) of a process, or undefined if it is gone. */
export function procCpuSeconds(pid: number): number | undefined {
  const f = stat(pid)?.f;
  return f ? (Number(f[11]) + Number(f[12])) / 100 : undefined; // utime, stime in USER_HZ (100 on Linux)
}

/** VmRSS and VmHWM of a process in KiB (what the OS charges it). */
export function procStatus(pid: number): { rssKiB: number; hwmKiB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
}

/** Per-core [busy, steal, total] jiffies from /proc/stat (empty where /proc is missing). */
export function coreTicks(): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (const line of (read('/proc/stat') ?? '').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const v = m[2]!.trim().split(/\s+/).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    // Busy = all but idle, iowait and interrupts: the loopback's softirq work is charged to no process,
    // so it would read as load from outside the bench. Steal (other VMs on the host) counts.
    out[Number(m[1])] = [total - v[3]! - v[4]! - v[5]! - v[6]!, v[7]!, total];
  }
  return out;
}

/** Busy % of each core between two coreTicks() readings. */
export function busyPercent(before: Array<[number, number, number]>, after: Array<[number, number, number]>): number[] {
  return after.map(([busy, , total], i) => {
    const [b0, , t0] = before[i] ?? [0, 0, 0];
    return Math.round(((busy - b0) / Math.max(1, total - t0)) * 1000) / 10;
  });
}

/** CPU jiffies, parent and last core of every process. */
function processTicks(): Map<number, { name: string; ppid: number; ticks: number; cpu: number }> {
  const out = new Map<number, { name: string; ppid: number; ticks: number; cpu: number }>();
  for (const pid of existsSync('/proc') ? readdirSync('/proc').filter((d) => /^\d+$/.test(d)) : []) {
    const s = stat(pid);
    if (s) out.set(Number(pid), { name: s.name, ppid: Number(s.f[1]), ticks: Number(s.f[11]) + Number(s.f[12]), cpu: Number(s.f[36]) });
  }
  return out;
}

export type MachineLoad = Awaited<ReturnType<typeof machineLoad>>;

/**
 * What else the machine is doing, over `ms` (/proc/stat, every /proc/PID/stat, loadavg): each core's busy %
 * (all processes), the same less this bench's own processes (this one and its descendants) as `outside`,
 * and the busiest processes outside the bench.
 */
export async function machineLoad(ms: number) {
  const [c0, p0] = [coreTicks(), processTicks()];
  const t0 = performance.now();
  await sleep(ms);
  const [c1, p1] = [coreTicks(), processTicks()];
  const seconds = (performance.now() - t0) / 1000;
  const busy = busyPercent(c0, c1);
  const ours = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
      if (p === process.pid) return true;
      p = p1.get(p)?.ppid ?? 0;
    }
    return false;
  };
  const own = busy.map(() => 0);
  const top: Array<{ pid: number; name: string; cpuPercent: number }> = [];
  for (const [pid, p] of p1) {
    const pct = ((p.ticks - (p0.get(pid)?.ticks ?? p.ticks)) / seconds); // jiffies/s = % of one core
    if (pct <= 0) continue;
    if (ours(pid)) own[p.cpu] = (own[p.cpu] ?? 0) + pct;
    else top.push({ pid, name: p.name, cpuPercent: Math.round(pct) });
  }
  top.sort((a, b) => b.cpuPercent - a.cpuPercent);
  return {
    busy,
    outside: busy.map((b, i) => Math.max(0, Math.round(b - (own[i] ?? 0)))),
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    top: top.slice(0, 3),
  };
}

export function formatLoad(l: MachineLoad): string {
  const top = l.top.filter((p) => p.cpuPercent >= 5).map((p) => `${p.name}[${p.pid}] ${p.cpuPercent}%`).join(', ');
  return `outside load ${l.outside.map((b, i) => `cpu${i} ${b}%`).join(' ')}, load average ${l.loadavg.join(' ')}${top ? `; busiest: ${top}` : ''}`;
}

/**
 * Datagrams the kernel dropped at the server's socket(s) bound to `port` (the `drops` column of
 * /proc/net/udp and udp6): a full receive buffer. Undefined where /proc is missing.
 */
export function serverSocketDrops(port: number): number | undefined {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const tables = ['/proc/net/udp', '/proc/net/udp6'].map(read).filter((t) => t !== undefined);
  if (tables.length === 0) return undefined;
  const rows = tables.flatMap((t) => t.split('\n').slice(1).map((line) => line.trim().split(/\s+/)));
  return rows.filter((f) => f[1]?.endsWith(hexPort)).reduce((sum, f) => sum + (Number(f.at(-1)) || 0), 0);
}
