// What bench/run.ts gives each stage: the options, the users, the load generator on its own core, and
// measured(): one run with the machine's load stated before it, discarded and re-run (bounded) when
// other processes were busy on the cores.
import { type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoadJob, LoadOptions, LoadResult } from './load-generator.js';
import { formatLoad, machineLoad, type MachineLoad } from './proc.js';
import { REPO, spawnOnCore, type RunningServer } from './servers.js';
import type { BenchUser } from './users.js';

export const SERVER_CPU = 0;
export const GENERATOR_CPU = 1;
export const SECRET = 'bench-secret-0123456789';
export const LOCAL_PASSWORD = 'BenchPw1';

export type Options = {
  seconds: number; warmup: number; levels: number[]; runs: number; users: number; frThreads: [number, number];
  /** Outside CPU % on a core (before or during a run) above which the run is discarded and re-run. */
  gate: number; retries: number; auditTo: 'file' | 'pipe';
  loginSeconds: number; spraySeconds: number; sprayFactor: number; keepDirs: boolean;
};

/** What a stage starts (a server, an engine, a child) and hands to ctx.track(). */
export type Stoppable = { stop: () => Promise<void>; dir?: string };

export type Ctx = {
  o: Options;
  users: BenchUser[];
  /** Results of the stages run so far, by name. */
  results: Record<string, unknown>;
  /**
   * Stopped when the stage ends, last tracked first (nodes before the engines they use), or on the hard
   * limit or a signal; its dir, if any, is removed when the bench ends.
   */
  track: <T extends Stoppable>(s: T) => T;
  /** Time this stage may still spend on re-runs of disturbed runs, ms (its share of the plan's slack). */
  reRunMs: number;
};

/** One measured() run's cost with a clean machine: the 0.5 s gate, warm-up, window, drain and IPC. */
export const runMs = (o: Options) => (o.warmup + o.seconds) * 1000 + 1300;

export type Stage = { name: string; about: string; estimateMs: (o: Options) => number; run: (ctx: Ctx) => Promise<unknown> };

/** A bench script (bench/load.ts, bench/spray.ts) as a child pinned to the generator core: one job per IPC message, answered {ok} or {error}. */
export class BenchChild<In, Out> {
  private readonly child: ChildProcess;

  constructor(private readonly file: string) {
    this.child = spawnOnCore(GENERATOR_CPU, process.execPath, ['--import', 'tsx', join(REPO, file)], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  }

  run(job: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`${this.file} exited ${code}`));
      this.child.once('message', (m: { ok?: Out; error?: string }) => {
        this.child.off('exit', onExit);
        if (m.ok) resolve(m.ok);
        else reject(new Error(`${this.file}: ${m.error}`));
      });
      this.child.once('exit', onExit);
      this.child.send(job as object);
    });
  }

  async stop(): Promise<void> {
    if (this.child.connected) this.child.disconnect();
  }
}

/** bench/load.ts, one long-lived child for the stage: one load run per job. */
export type Generator = BenchChild<LoadJob, LoadResult>;
export const generator = (ctx: Ctx): Generator => ctx.track(new BenchChild('bench/load.ts'));

export type Measured = { result: LoadResult; before: MachineLoad; outsideDuring: number[]; discarded: number; loaded: boolean };

/**
 * One load run against `server`, the machine's load sampled for 0.5 s before it and over its window (a
 * core's busy % less this bench's own processes, engines included); one over `o.gate` % is discarded and
 * re-run, at most `o.retries` times within the stage's re-run budget; the last is kept, marked `loaded`.
 */
export async function measured(ctx: Ctx, gen: Generator, label: string, server: RunningServer, load: Partial<LoadOptions>): Promise<Measured> {
  const o = ctx.o;
  const costMs = ((load.warmupSeconds ?? o.warmup) + (load.seconds ?? o.seconds)) * 1000 + 1000;
  for (let discarded = 0; ; discarded++) {
    const t0 = performance.now();
    const before = await machineLoad(500);
    const run = { secret: SECRET, port: server.port, serverPid: server.pid, users: o.users, seconds: o.seconds, warmupSeconds: o.warmup, ...load };
    const during = sleep(run.warmupSeconds * 1000).then(() => machineLoad(run.seconds * 1000));
    const [result, { outside: outsideDuring }] = await Promise.all([gen.run(run), during]);
    const worst = Math.max(...before.outside, ...outsideDuring);
    const loaded = worst > o.gate;
    const lost = result.timeouts || result.serverSocketDrops ? ` (${result.timeouts} timeouts, ${result.serverSocketDrops ?? '?'} dropped at the server's socket)` : '';
    const line = `  ${label}: ${result.answeredPerSec}/s${lost}, p99 ${result.latency.p99Ms} ms, server CPU ${result.server?.cpuPercent ?? '-'}%; before: ${formatLoad(before)}; during: outside ${outsideDuring.map((b, i) => `cpu${i} ${b}%`).join(' ')}`;
    if (loaded && discarded < o.retries && ctx.reRunMs > costMs) {
      console.log(`${line} -- DISCARDED (over ${o.gate}% of a core used by other processes), re-running`);
      ctx.reRunMs -= performance.now() - t0;
      continue;
    }
    console.log(loaded ? `${line} -- KEPT UNDER LOAD (after ${discarded} re-run(s)${discarded < o.retries ? '; no time left for more' : ''})` : line);
    return { result, before, outsideDuring, discarded, loaded };
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** (max - min) / median, in %. */
export function spread(xs: number[]): number {
  return xs.length ? Math.round(((Math.max(...xs) - Math.min(...xs)) / median(xs)) * 1000) / 10 : NaN;
}

export const round2 = (x: number) => Math.round(x * 100) / 100;

/** Columns aligned (the first to the left); a missing or NaN figure (null after IPC) shows as '-'. */
export function table(head: string[], figures: unknown[][]): string {
  const rows = figures.map((r) => r.map((x) => (x === undefined || x === null || Number.isNaN(x) ? '-' : String(x))));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
