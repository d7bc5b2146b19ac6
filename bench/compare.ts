// Throughput stages, PAP + TOTP, each server alone on core 0, the generator on core 1 (docs/performance.md):
// echo (the generator's ceiling), compare (issue 16: ours against FreeRADIUS, audit on and off), profile and alloc.
// compare's ratio = median(ours) / median(FreeRADIUS): one slow run of either side moves it less than
// best-of would; each run's ratio and both sides' spreads are printed.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { formatProfile, summarizeProfile } from './profile-summary.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { freeUdpPort } from '../scripts/engines/ports.js';
import { provisionOurs, startEcho, startFreeradius, startOurs, type RunningServer } from './servers.js';
import { GENERATOR_CPU, generator, SECRET, SERVER_CPU, measured, median, round2, runMs, spread, table, type Measured, type Stage } from './stage.js';

export const echoStage: Stage = {
  name: 'echo',
  about: 'the load generator against a trivial signed responder: its ceiling',
  estimateMs: (o) => 2000 + o.levels.length * runMs(o),
  run: async (ctx) => {
    const gen = generator(ctx);
    const echo = ctx.track(await startEcho(SECRET, SERVER_CPU));
    const rows: Measured[] = [];
    for (const c of ctx.o.levels) rows.push(await measured(ctx, gen, `echo c=${c}`, echo, { concurrency: c }));
    console.log(table(['concurrency', 'answered/s', 'generator CPU %', 'echo CPU %', 'p50 ms', 'p99 ms'], rows.map(({ result: r }) =>
      [r.options.concurrency, r.answeredPerSec, r.generator.cpuPercent, r.server?.cpuPercent, r.latency.p50Ms, r.latency.p99Ms])));
    return rows;
  },
};

type Pair = { ours: Measured; fr: Measured };
/** Each server's unmeasured first load, after start-up. */
const WARM_SECONDS = 2;

export const compareStage: Stage = {
  name: 'compare',
  about: 'ours vs FreeRADIUS: audit log on (default config) vs auth = yes, off vs auth = no; medians of alternating runs',
  estimateMs: (o) => 8000 + 4 * (WARM_SECONDS * 1000 + 300) + 2 * o.levels.length * o.runs * 2 * runMs(o),
  run: async (ctx) => {
    const o = ctx.o;
    const gen = generator(ctx);
    const dir = provisionOurs(ctx.users, SECRET);
    const common = { secret: SECRET, firstFactor: 'none' as const, throughput: true, auditTo: o.auditTo };
    const modes: Array<{ mode: string; ours: RunningServer; fr: RunningServer }> = [];
    for (const audit of [true, false]) {
      modes.push({
        mode: audit ? 'audit on (default config) vs auth = yes' : 'audit off (log.level warn) vs auth = no',
        ours: ctx.track(await startOurs(dir, { ...common, logLevel: audit ? 'info' : 'warn' }, SERVER_CPU)),
        fr: ctx.track(await startFreeradius({ port: await freeUdpPort(), secret: SECRET, users: ctx.users, cpu: SERVER_CPU, threads: o.frThreads, authLog: audit })),
      });
    }
    const startMs = Object.fromEntries(modes.flatMap((m) => [[m.ours.name, m.ours.startMs], [m.fr.name, m.fr.startMs]]));
    console.log(`start-up to the first answered Status-Server (target for ours: <= 500 ms): ${Object.entries(startMs).map(([n, ms]) => `${n} ${ms} ms`).join(', ')}`);
    // The same unmeasured first load for every server: a JIT compiles the hot path over its first
    // seconds (ours' first measured run was 10-20 % below its later ones), and a server in service is warm.
    for (const m of modes) for (const srv of [m.ours, m.fr]) await gen.run({ secret: SECRET, port: srv.port, users: o.users, concurrency: 64, seconds: WARM_SECONDS, warmupSeconds: 0 });
    const out: ReturnType<typeof summarize>[] = [];
    for (const m of modes) {
      for (const [li, c] of o.levels.entries()) {
        console.log(`${m.mode}, ${c} outstanding:`);
        const pairs: Pair[] = [];
        for (let run = 1; run <= o.runs; run++) {
          const p = {} as Pair; // who runs first after a pause alternates
          for (const side of (run + li) % 2 ? (['ours', 'fr'] as const) : (['fr', 'ours'] as const)) p[side] = await measured(ctx, gen, `run ${run} ${side === 'ours' ? 'ours' : 'FreeRADIUS'}`, m[side], { concurrency: c });
          pairs.push(p);
          console.log(`  run ${run}: ratio ${round2(p.ours.result.answeredPerSec / p.fr.result.answeredPerSec)}x, p99 ${p.ours.result.latency.p99Ms} vs ${p.fr.result.latency.p99Ms} ms`);
        }
        out.push(summarize(m.mode, c, pairs));
      }
    }
    const rows = out.map((s) => [s.mode.split(' (')[0]!.split(' vs')[0]!, s.concurrency, s.ours.median, s.fr.median, s.ratio + 'x',
      s.perRun.map((r) => r.ratio).join(' '), s.ours.spreadPercent + '%', s.fr.spreadPercent + '%', s.ours.p99Median + ' / ' + s.fr.p99Median,
      s.runsMeetingTarget + '/' + s.perRun.length, s.runsUnderLoad]);
    console.log('\n' + table(['mode', 'conc', 'ours/s (median)', 'FR/s (median)', 'ratio', 'per run', 'ours spread', 'FR spread', 'p99 ours / FR ms', 'target met', 'runs under load'], rows));
    console.log('target (issue 16): >= 1.5x answered/s with p99 no worse than FreeRADIUS, in each run. Spread = (max - min) / median over the runs.');
    console.log('ours rejects repeats of a (user, 30 s step) as replays (same work); FreeRADIUS 3.2.1 rlm_totp has no replay guard and accepts them.');
    return { startMs, results: out };
  },
};

function summarize(mode: string, concurrency: number, pairs: Pair[]) {
  const side = (k: 'ours' | 'fr') => {
    const rates = pairs.map((p) => p[k].result.answeredPerSec);
    return { median: Math.round(median(rates)), spreadPercent: spread(rates), p99Median: round2(median(pairs.map((p) => p[k].result.latency.p99Ms))), runs: pairs.map((p) => p[k].result) };
  };
  const [ours, fr] = [side('ours'), side('fr')];
  const perRun = pairs.map((p) => ({
    ratio: round2(p.ours.result.answeredPerSec / p.fr.result.answeredPerSec),
    p99Ratio: round2(p.ours.result.latency.p99Ms / p.fr.result.latency.p99Ms),
    perServerCpuSecond: round2((p.ours.result.server?.answeredPerCpuSecond ?? NaN) / (p.fr.result.server?.answeredPerCpuSecond ?? NaN)),
  }));
  return {
    mode, concurrency, ours, fr, perRun, ratio: round2(ours.median / fr.median),
    runsMeetingTarget: perRun.filter((r) => r.ratio >= 1.5 && r.p99Ratio <= 1).length,
    runsUnderLoad: pairs.filter((p) => p.ours.loaded || p.fr.loaded).length,
    machine: pairs.map((p) => ({ ours: { before: p.ours.before, during: p.ours.outsideDuring, discarded: p.ours.discarded }, fr: { before: p.fr.before, during: p.fr.outsideDuring, discarded: p.fr.discarded } })),
  };
}

export const profileStage: Stage = {
  name: 'profile',
  about: 'ours (audit on) under node --cpu-prof: self time by module and function (opt-in: --profile)',
  estimateMs: (o) => 6000 + runMs(o),
  run: async (ctx) => {
    const gen = generator(ctx);
    const dir = provisionOurs(ctx.users, SECRET);
    const profileDir = join(dir, 'profile');
    const srv = ctx.track(await startOurs(dir, { secret: SECRET, firstFactor: 'none', logLevel: 'info', throughput: true, auditTo: ctx.o.auditTo }, SERVER_CPU, ['--cpu-prof', '--cpu-prof-dir', profileDir]));
    const c = Math.max(...ctx.o.levels);
    const m = await measured(ctx, gen, `profiled ours c=${c}`, srv, { concurrency: c });
    await srv.stop(); // the profile is written at exit
    const file = readdirSync(profileDir).map((f) => join(profileDir, f)).sort((x, y) => statSync(y).size - statSync(x).size)[0];
    if (!file) return undefined;
    const summary = summarizeProfile(file, 25);
    console.log(`where ours spends its time (profiling slows it by a few %; generator on core ${GENERATOR_CPU}):`);
    console.log(formatProfile(summary, Math.round(m.result.answeredPerSec * (ctx.o.warmup + m.result.windowSeconds))));
    return summary;
  },
};

/** What V8 says it allocated, summed over the GCs logged so far (--trace-gc-nvp writes one line per GC to stdout). */
function gcTotals(logFile: string): { allocated: number; promoted: number; gcs: number } {
  const t = { allocated: 0, promoted: 0, gcs: 0 };
  for (const m of readFileSync(logFile, 'utf8').matchAll(/ allocated=(\d+) promoted=(\d+)/g)) {
    t.allocated += Number(m[1]);
    t.promoted += Number(m[2]);
    t.gcs++;
  }
  return t;
}

export const allocStage: Stage = {
  name: 'alloc',
  about: 'ours (audit on): bytes V8 allocates per answered request, from --trace-gc-nvp; steadier than answered/s on a shared VM (opt-in: --alloc)',
  estimateMs: (o) => 6000 + WARM_SECONDS * 1000 + 3 * (runMs(o) + 600),
  run: async (ctx) => {
    const gen = generator(ctx);
    const dir = provisionOurs(ctx.users, SECRET);
    const srv = ctx.track(await startOurs(dir, { secret: SECRET, firstFactor: 'none', logLevel: 'info', throughput: true, auditTo: 'file' }, SERVER_CPU, ['--trace-gc-nvp']));
    const c = ctx.o.levels[0]!;
    await gen.run({ secret: SECRET, port: srv.port, users: ctx.o.users, concurrency: c, seconds: WARM_SECONDS, warmupSeconds: 0 });
    const windows = [];
    for (let i = 1; i <= 3; i++) {
      // V8 prints through C stdio, buffered: a pause lets the lines of the GCs before and after the window out.
      await sleep(300);
      const before = gcTotals(srv.logFile);
      const m = await measured(ctx, gen, `window ${i}, c=${c}`, srv, { concurrency: c, warmupSeconds: 0 });
      await sleep(300);
      const after = gcTotals(srv.logFile);
      const answered = m.result.answeredPerSec * m.result.windowSeconds;
      windows.push({ bytesPerRequest: Math.round((after.allocated - before.allocated) / answered), promotedPerRequest: Math.round((after.promoted - before.promoted) / answered), gcs: after.gcs - before.gcs, answeredPerSec: m.result.answeredPerSec });
    }
    console.log(table(['window', 'bytes allocated / request', 'promoted / request', 'GCs', 'answered/s'], windows.map((w, i) => [i + 1, w.bytesPerRequest, w.promotedPerRequest, w.gcs, w.answeredPerSec])));
    return windows;
  },
};
