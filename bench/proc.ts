// Linux /proc probes shared by the benches: CPU of a process and of each core, memory, socket drops.
// Each returns an empty or undefined value where /proc is missing, so the bench still runs.
import { readFileSync } from 'node:fs';

/** CPU seconds (utime + stime) of a process, or undefined if it is gone. */
export function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return undefined;
  }
}

/** VmRSS and VmHWM of a process in KiB (what the OS charges it). */
export function procStatus(pid: number): { rssKiB: number; hwmKiB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
}

/** Per-core [busy, steal, total] jiffies from /proc/stat (empty where /proc is missing). */
export function coreTicks(): Array<[number, number, number]> {
  try {
    const out: Array<[number, number, number]> = [];
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+) (.*)$/.exec(line);
      if (!m) continue;
      const v = m[2]!.trim().split(/\s+/).map(Number);
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
      const idle = v[3]! + v[4]!; // idle + iowait
      out[Number(m[1])] = [total - idle, v[7]!, total];
    }
    return out;
  } catch {
    return [];
  }
}

/** Busy % of each core over `ms` while the bench runs nothing: load from outside the bench. */
export async function backgroundBusy(ms: number): Promise<number[]> {
  const before = coreTicks();
  await new Promise((r) => setTimeout(r, ms));
  return coreTicks().map(([busy, , total], i) => {
    const [b0, , t0] = before[i] ?? [0, 0, 0];
    return Math.round(((busy - b0) / Math.max(1, total - t0)) * 1000) / 10;
  });
}

/**
 * Datagrams the kernel dropped at the server's socket(s) bound to `port` (the `drops` column of
 * /proc/net/udp and udp6): a full receive buffer. Undefined where /proc is missing.
 */
export function serverSocketDrops(port: number): number | undefined {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let drops = 0;
  let read = false;
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    read = true;
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(hexPort)) drops += Number(f[f.length - 1]) || 0;
    }
  }
  return read ? drops : undefined;
}
